"""Who may use the console: its own officer, through its own pages. Checked for every request and WebSocket.

The console holds the officer's credentials. Authority never comes from a header:

* on loopback (the default) the peer address must be loopback too — the kernel, not the client, says so;
* on any other address the console runs HTTPS with mutual TLS (:mod:`agent.customs.console.tls`) and only a
  client certificate that chained to ``listen.client_ca`` *and* names this console's officer (CN) gets in —
  a genuine device or another officer's certificate does not.

Then the browser checks: any web page the officer opens could otherwise reach the console (browsers let a
foreign page open a WebSocket there or send a form-like POST, with the client certificate; DNS rebinding lets
a foreign name resolve to it). So ``Host`` must name this server (loopback names, the configured host, the
names in its certificate) and ``Origin``, when a browser sends one, must be that same server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography import x509

from agent.customs.console.tls import client_cert

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _foreign_peer(addr: str) -> bool:
    """A peer IP address that is not loopback (a server on a socket always gives an IP; in-process test
    clients and Unix sockets give a name or nothing, and cannot come from the network)."""
    try:
        return not ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class SameOriginOnly:
    """ASGI middleware: 403 (HTTP) or close 1008 (WebSocket) for a client that is not the console's officer,
    or a foreign Host or Origin.

    ``officer``: with mutual TLS, the officer id the client certificate must name; None: the console listens
    on loopback and every peer must be a loopback address.
    """

    def __init__(self, app: App, *, hosts: tuple[str, ...] = LOOPBACK_NAMES, officer: str | None = None) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.officer = officer

    def _who(self, scope: Scope) -> str | None:
        """None if the client is the console's officer (or on loopback), else the reason."""
        if self.officer is None:
            client = scope.get("client")
            if client and _foreign_peer(str(client[0])):
                return f"{client[0]} is not a loopback address (this console listens on loopback only)"
            return None
        cert = client_cert(scope)
        if cert is None:
            return "no verified client certificate (this console requires the officer's TLS certificate)"
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        if cn != self.officer:
            return f"client certificate {cn[:64]!r} is not this console's officer"
        return None

    def allowed(self, scope: Scope) -> str | None:
        """None if allowed, else the reason."""
        who = self._who(scope)
        if who is not None:
            return who
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.lower() not in self.hosts:
            return f"Host {host!r} is not this console"
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
            return f"Origin {origin!r} is not this console"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.allowed(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = f"forbidden: {reason}\n".encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
