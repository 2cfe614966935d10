"""A LAN neighbour's clients, run inside a test network namespace: one JSON request on stdin, one JSON line out.

Started by :meth:`tests.support.netns.NetnsHost.python` (``ip netns exec NS python lan_client.py``). It imports
nothing of the project: the standard library, websockets and Playwright only. Requests, by ``op``:

* ``wait``: connect to ``host``:``port`` until accepted, until process ``pid`` exits, or ``timeout`` seconds
  → ``{"listening", "exited"}``
* ``http``: one GET of ``path`` (plain, or ``tls`` trusting ``ca`` with optional ``cert``/``key``; optional
  ``host_header`` and ``origin``) → ``{"status", "body"}``, or ``{"refused": error}`` when the connection or the
  TLS handshake fails
* ``ws``: open ``url`` (``ca``, ``cert``, ``key``) and read one message → ``{"message"}`` or ``{"refused": error}``
* ``browser``: Chromium (``executable``, ``args``) loads ``url`` once per entry of ``contexts`` (each a list of
  Playwright client certificates), waiting for ``selector`` after a 200 → ``[{"status", "selector", "error"}]``
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import sys
import time
from typing import Any


def _wait(req: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + float(req["timeout"])
    try:
        pidfd = os.pidfd_open(int(req["pid"]))  # readable once the process has exited
    except ProcessLookupError:
        return {"listening": False, "exited": True}
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"listening": False, "exited": False}
            try:
                with socket.create_connection((req["host"], int(req["port"])), timeout=min(remaining, 2.0)):
                    return {"listening": True, "exited": False}
            except OSError:
                pass
            # refused: wait for the next attempt, or for the process to exit, whichever comes first
            if select.select([pidfd], [], [], max(0.0, min(0.1, deadline - time.monotonic())))[0]:
                return {"listening": False, "exited": True}
    finally:
        os.close(pidfd)


def _tls(req: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=req["ca"])
    if req.get("cert"):
        ctx.load_cert_chain(req["cert"], req["key"])
    return ctx


def _http(req: dict[str, Any]) -> dict[str, Any]:
    host, port = req["host"], int(req["port"])
    conn = (http.client.HTTPSConnection(host, port, timeout=10, context=_tls(req)) if req.get("tls")
            else http.client.HTTPConnection(host, port, timeout=10))
    try:
        conn.putrequest("GET", req["path"], skip_host=True)
        conn.putheader("Host", req.get("host_header") or f"{host}:{port}")
        if req.get("origin"):
            conn.putheader("Origin", req["origin"])
        conn.endheaders()
        res = conn.getresponse()
        return {"status": res.status, "body": res.read().decode(errors="replace")}
    except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
        return {"refused": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


def _ws(req: dict[str, Any]) -> dict[str, Any]:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(req["url"], ssl=_tls(req), open_timeout=10) as ws:
            return {"message": json.loads(ws.recv(timeout=10))}
    except (InvalidStatus, OSError) as exc:
        return {"refused": f"{type(exc).__name__}: {exc}"}


def _browser(req: dict[str, Any]) -> list[dict[str, Any]]:
    from playwright.sync_api import Error, sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=req["executable"], headless=True, args=req["args"])
        try:
            for certs in req["contexts"]:
                ctx = browser.new_context(ignore_https_errors=True, client_certificates=certs)
                page = ctx.new_page()
                out: dict[str, Any] = {"status": None, "selector": False, "error": None}
                try:
                    res = page.goto(req["url"])
                    out["status"] = None if res is None else res.status
                    if out["status"] == 200:
                        page.wait_for_selector(req["selector"], timeout=20_000)
                        out["selector"] = True
                except Error as exc:  # net::ERR_... from a refused TLS handshake, or the selector never came
                    out["error"] = str(exc).splitlines()[0]
                finally:
                    ctx.close()
                results.append(out)
        finally:
            browser.close()
    return results


OPS = {"wait": _wait, "http": _http, "ws": _ws, "browser": _browser}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    print(json.dumps(OPS[request["op"]](request)))
