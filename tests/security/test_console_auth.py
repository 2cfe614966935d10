"""The console never takes authority from a Host header: the real `evidence-officer console` on a LAN address.

Before: bound to a non-loopback address, the console answered any LAN client that sent ``Host: 127.0.0.1``
— with the officer's TLS identity and command-signing key behind it. Now a non-loopback ``listen.host``
needs mutual TLS (``listen.tls_cert``, ``listen.tls_key``, ``listen.client_ca``) and the console refuses to
start without it; with it, only a client certificate that chains to ``client_ca`` *and* names this console's
officer gets an answer (a genuine fleet certificate of a device does not).

The LAN neighbour is a test host in its own network namespace (:mod:`tests.support.netns`): the console listens
on this machine's end of the veth pair, and every client — http.client and ssl probes, a WebSocket, Chromium
through Playwright presenting the officer's certificate — runs inside the namespace
(:mod:`tests.support.lan_client`). No traffic goes to this machine's real interfaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.customs.broker.setup import _server
from tests.support.broker import free_port
from tests.support.fleet import ENV, Fleet, officer_cli
from tests.support.helpers import REPO
from tests.support.netns import NetnsHost

CLIENT = REPO / "tests" / "support" / "lan_client.py"


@pytest.fixture(scope="module")
def officer_keys(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("console-officer") / "keys"
    assert officer_cli("keys", "init", "--officer-id", "officer-alice", "--dir", str(home)).returncode == 0
    return home


@pytest.fixture(scope="module")
def server_cert(fleet: Fleet, lan_neighbour: NetnsHost,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The console's own TLS certificate for its address on the veth pair, issued by the customs CA."""
    ca_key = serialization.load_pem_private_key((fleet.root / "ca" / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(fleet.ca.read_bytes())
    cert, key = _server((ca_key, ca_cert), lan_neighbour.host_addr)  # type: ignore[arg-type]
    folder = tmp_path_factory.mktemp("console-tls")
    (folder / "console.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "console.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return folder / "console.pem", folder / "console.key"


def _config(fleet: Fleet, keys: Path, folder: Path, host: str, port: int, listen: str) -> Path:
    cert, key = fleet.cert_files("officer-alice")
    path = folder / "console.toml"
    path.write_text(f"""
[broker]
url = "{fleet.url}"
ca_file = "{fleet.ca}"
cert_file = "{cert}"
key_file = "{key}"
[officer]
keys = "{keys}"
device_ca = "{fleet.ca}"
[listen]
host = "{host}"
port = {port}
{listen}
[inspections]
data = "{folder / 'data'}"
""")
    return path


def _start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "console", "--config", str(config)], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_listening(lan: NetnsHost, proc: subprocess.Popen[str], port: int, timeout: float = 60) -> bool:
    """True once the console accepts connections from the test host; False if it exited first."""
    res = lan.python(CLIENT, {"op": "wait", "host": lan.host_addr, "port": port, "pid": proc.pid,
                              "timeout": timeout}, timeout=timeout + 30)
    if res["exited"]:
        proc.wait(20)
        return False
    if not res["listening"]:
        raise AssertionError("console neither listened nor exited")
    return True


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _get(lan: NetnsHost, port: int, *, tls: bool, ca: Path | None = None, identity: tuple[Path, Path] | None = None,
         path: str = "/api/devices", host_header: str | None = None, origin: str | None = None) -> dict[str, Any]:
    """One GET from the test host: ``{"status", "body"}`` or ``{"refused": error}``."""
    cert, key = identity or (None, None)
    return lan.python(CLIENT, {"op": "http", "host": lan.host_addr, "port": port, "path": path, "tls": tls,
                               "ca": str(ca) if ca else None, "cert": str(cert) if cert else None,
                               "key": str(key) if key else None, "host_header": host_header, "origin": origin})


def test_a_lan_console_without_client_authentication_refuses_to_start(fleet: Fleet, officer_keys: Path,
                                                                      lan_neighbour: NetnsHost,
                                                                      tmp_path: Path) -> None:
    """Before: it started, and a LAN client sending ``Host: 127.0.0.1`` got the officer's console (200)."""
    port = free_port()
    proc = _start(_config(fleet, officer_keys, tmp_path, lan_neighbour.host_addr, port, ""))
    try:
        if _wait_listening(lan_neighbour, proc, port):
            res = _get(lan_neighbour, port, tls=False, host_header="127.0.0.1")
            pytest.fail(f"the console started on {lan_neighbour.host_addr} without client authentication; a "
                        f"forged Host: 127.0.0.1 from {lan_neighbour.ns_addr} got {res}")
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        _stop(proc)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "listen.client_ca" in lines[0] and "Traceback" not in err, err


@pytest.fixture(scope="module")
def lan_console(fleet: Fleet, officer_keys: Path, server_cert: tuple[Path, Path], lan_neighbour: NetnsHost,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The console with mutual TLS on this machine's end of the veth pair; its port."""
    port = free_port()
    folder = tmp_path_factory.mktemp("lan-console")
    listen = f'tls_cert = "{server_cert[0]}"\ntls_key = "{server_cert[1]}"\nclient_ca = "{fleet.ca}"\n'
    proc = _start(_config(fleet, officer_keys, folder, lan_neighbour.host_addr, port, listen))
    try:
        assert _wait_listening(lan_neighbour, proc, port), proc.stderr.read() if proc.stderr else ""
        yield port
    finally:
        _stop(proc)


def test_plain_http_with_a_forged_host_gets_nothing(lan_neighbour: NetnsHost, lan_console: int) -> None:
    res = _get(lan_neighbour, lan_console, tls=False, host_header="127.0.0.1")
    assert "refused" in res or res["status"] != 200, res  # refused: the TLS server gave no answer at all


def test_tls_without_a_client_certificate_is_refused(fleet: Fleet, lan_neighbour: NetnsHost,
                                                     lan_console: int) -> None:
    res = _get(lan_neighbour, lan_console, tls=True, ca=fleet.ca, host_header="127.0.0.1")
    assert "refused" in res, res


def test_a_genuine_device_certificate_is_not_the_officer(fleet: Fleet, lan_neighbour: NetnsHost,
                                                         lan_console: int) -> None:
    """cam-evil's certificate chains to the customs CA like the officer's: its CN decides, and it is refused."""
    res = _get(lan_neighbour, lan_console, tls=True, ca=fleet.ca, identity=fleet.cert_files("cam-evil"),
               host_header="127.0.0.1")
    assert res.get("status") == 403 and "cam-evil" in res["body"], res


def test_the_officers_certificate_opens_the_console(fleet: Fleet, lan_neighbour: NetnsHost,
                                                    lan_console: int) -> None:
    officer = fleet.cert_files("officer-alice")
    res = _get(lan_neighbour, lan_console, tls=True, ca=fleet.ca, identity=officer)
    assert res.get("status") == 200 and "devices" in json.loads(res["body"]), res
    # a foreign page in the officer's browser still cannot use it: the Origin check stays
    res = _get(lan_neighbour, lan_console, tls=True, ca=fleet.ca, identity=officer, origin="https://evil.example")
    assert res.get("status") == 403, res


def test_websockets_need_the_officer_too(fleet: Fleet, lan_neighbour: NetnsHost, lan_console: int) -> None:
    url = f"wss://{lan_neighbour.host_addr}:{lan_console}/ws/fleet"

    def ws(identity: str) -> dict[str, Any]:
        cert, key = fleet.cert_files(identity)
        return lan_neighbour.python(CLIENT, {"op": "ws", "url": url, "ca": str(fleet.ca), "cert": str(cert),
                                             "key": str(key)})

    res = ws("officer-alice")
    assert res.get("message", {}).get("t") == "snapshot", res
    res = ws("cam-evil")
    assert "refused" in res, res


def test_chromium_with_the_officers_certificate(fleet: Fleet, lan_neighbour: NetnsHost, lan_console: int) -> None:
    """The officer's browser presents the TLS client certificate; a browser without it gets no page."""
    from tests.support.console_stack import CHROMIUM, CHROMIUM_ARGS, need_browser

    need_browser()
    origin = f"https://{lan_neighbour.host_addr}:{lan_console}"
    cert, key = fleet.cert_files("officer-alice")
    officer = [{"origin": origin, "certPath": str(cert), "keyPath": str(key)}]
    with_cert, bare = lan_neighbour.python(CLIENT, {
        "op": "browser", "executable": CHROMIUM, "args": CHROMIUM_ARGS, "url": f"{origin}/fleet",
        "selector": "text=Fleet", "contexts": [officer, []]}, timeout=180)
    assert with_cert["status"] == 200 and with_cert["selector"], with_cert
    assert bare["status"] != 200, bare  # None: net::ERR_... from the refused TLS handshake
