"""The console never takes authority from a Host header: the real `evidence-officer console` on a LAN address.

Before: bound to a non-loopback address, the console answered any LAN client that sent ``Host: 127.0.0.1``
— with the officer's TLS identity and command-signing key behind it. Now a non-loopback ``listen.host``
needs mutual TLS (``listen.tls_cert``, ``listen.tls_key``, ``listen.client_ca``) and the console refuses to
start without it; with it, only a client certificate that chains to ``client_ca`` *and* names this console's
officer gets an answer (a genuine fleet certificate of a device does not).

The console binds 0.0.0.0 and is reached through this machine's own non-loopback address, as a LAN neighbour
would reach it; Chromium presents the officer's certificate through Playwright.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.customs.broker.setup import _server
from tests.support.broker import free_port
from tests.support.fleet import ENV, Fleet, officer_cli
from tests.support.helpers import REPO


def lan_address() -> str:
    """This machine's own first non-loopback IPv4 address (the test connects to nothing else)."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=False).stdout
    for link in json.loads(out or "[]"):
        for addr in link.get("addr_info", []):
            if not addr["local"].startswith("127."):
                return str(addr["local"])
    pytest.skip("this machine has no non-loopback IPv4 address")


@pytest.fixture(scope="module")
def officer_keys(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("console-officer") / "keys"
    assert officer_cli("keys", "init", "--officer-id", "officer-alice", "--dir", str(home)).returncode == 0
    return home


@pytest.fixture(scope="module")
def server_cert(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The console's own TLS certificate for the LAN address, issued by the customs CA."""
    ca_key = serialization.load_pem_private_key((fleet.root / "ca" / "ca.key").read_bytes(), password=None)
    from cryptography import x509

    ca_cert = x509.load_pem_x509_certificate(fleet.ca.read_bytes())
    cert, key = _server((ca_key, ca_cert), lan_address())  # type: ignore[arg-type]
    folder = tmp_path_factory.mktemp("console-tls")
    (folder / "console.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "console.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return folder / "console.pem", folder / "console.key"


def _config(fleet: Fleet, keys: Path, folder: Path, port: int, listen: str) -> Path:
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
host = "0.0.0.0"
port = {port}
{listen}
[inspections]
data = "{folder / 'data'}"
""")
    return path


def _start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "console", "--config", str(config)], cwd=REPO,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_listening(proc: subprocess.Popen[str], host: str, port: int, timeout: float = 60) -> bool:
    """True once the port accepts connections; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    raise AssertionError("console neither listened nor exited")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _plain_get(host: str, port: int, path: str, host_header: str) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host_header)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_lan_console_without_client_authentication_refuses_to_start(fleet: Fleet, officer_keys: Path,
                                                                      tmp_path: Path) -> None:
    """Before: it started, and a LAN client sending ``Host: 127.0.0.1`` got the officer's console (200)."""
    ip, port = lan_address(), free_port()
    proc = _start(_config(fleet, officer_keys, tmp_path, port, ""))
    try:
        if _wait_listening(proc, ip, port):
            status = _plain_get(ip, port, "/api/devices", "127.0.0.1")
            pytest.fail(f"the console started on 0.0.0.0 without client authentication; a forged "
                        f"Host: 127.0.0.1 from {ip} got HTTP {status}")
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        _stop(proc)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "listen.client_ca" in lines[0] and "Traceback" not in err, err


@pytest.fixture(scope="module")
def lan_console(fleet: Fleet, officer_keys: Path, server_cert: tuple[Path, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    ip, port = lan_address(), free_port()
    folder = tmp_path_factory.mktemp("lan-console")
    listen = f'tls_cert = "{server_cert[0]}"\ntls_key = "{server_cert[1]}"\nclient_ca = "{fleet.ca}"\n'
    proc = _start(_config(fleet, officer_keys, folder, port, listen))
    try:
        assert _wait_listening(proc, ip, port), proc.stderr.read() if proc.stderr else ""
        yield ip, port
    finally:
        _stop(proc)


def _tls(fleet: Fleet, identity: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(fleet.ca))
    if identity is not None:
        cert, key = fleet.cert_files(identity)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _tls_get(fleet: Fleet, ip: str, port: int, identity: str | None, path: str = "/api/devices",
             host_header: str | None = None, origin: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPSConnection(ip, port, timeout=10, context=_tls(fleet, identity))
    try:
        headers = {} if origin is None else {"Origin": origin}
        if host_header is not None:
            conn.putrequest("GET", path, skip_host=True)
            conn.putheader("Host", host_header)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
        else:
            conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        return res.status, res.read().decode(errors="replace")
    finally:
        conn.close()


def test_plain_http_with_a_forged_host_gets_nothing(lan_console: tuple[str, int]) -> None:
    ip, port = lan_console
    try:
        status = _plain_get(ip, port, "/api/devices", "127.0.0.1")
    except (OSError, http.client.HTTPException):
        return  # the TLS handshake failed: no answer at all
    assert status != 200, status


def test_tls_without_a_client_certificate_is_refused(fleet: Fleet, lan_console: tuple[str, int]) -> None:
    ip, port = lan_console
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        _tls_get(fleet, ip, port, None, host_header="127.0.0.1")


def test_a_genuine_device_certificate_is_not_the_officer(fleet: Fleet, lan_console: tuple[str, int]) -> None:
    """cam-evil's certificate chains to the customs CA like the officer's: its CN decides, and it is refused."""
    ip, port = lan_console
    status, body = _tls_get(fleet, ip, port, "cam-evil", host_header="127.0.0.1")
    assert status == 403 and "cam-evil" in body, (status, body)


def test_the_officers_certificate_opens_the_console(fleet: Fleet, lan_console: tuple[str, int]) -> None:
    ip, port = lan_console
    status, body = _tls_get(fleet, ip, port, "officer-alice")
    assert status == 200 and "devices" in json.loads(body), (status, body)
    # a foreign page in the officer's browser still cannot use it: the Origin check stays
    status, _ = _tls_get(fleet, ip, port, "officer-alice", origin="https://evil.example")
    assert status == 403


def test_websockets_need_the_officer_too(fleet: Fleet, lan_console: tuple[str, int]) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ip, port = lan_console
    with connect(f"wss://{ip}:{port}/ws/fleet", ssl=_tls(fleet, "officer-alice"), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["t"] == "snapshot"
    with pytest.raises((InvalidStatus, OSError)), \
            connect(f"wss://{ip}:{port}/ws/fleet", ssl=_tls(fleet, "cam-evil"), open_timeout=10) as ws:
        ws.recv(timeout=10)


def test_chromium_with_the_officers_certificate(fleet: Fleet, lan_console: tuple[str, int]) -> None:
    """The officer's browser presents the TLS client certificate; a browser without it gets no page."""
    from tests.support.console_stack import chromium, need_browser

    need_browser()
    ip, port = lan_console
    cert, key = fleet.cert_files("officer-alice")
    url = f"https://{ip}:{port}/fleet"
    with chromium() as browser:
        ctx = browser.new_context(ignore_https_errors=True, client_certificates=[
            {"origin": f"https://{ip}:{port}", "certPath": str(cert), "keyPath": str(key)}])
        page = ctx.new_page()
        res = page.goto(url)
        assert res is not None and res.status == 200
        page.wait_for_selector("text=Fleet", timeout=20_000)
        ctx.close()
        bare = browser.new_context(ignore_https_errors=True)
        page = bare.new_page()
        try:
            res = page.goto(url)
        except Exception:  # net::ERR_... from the refused TLS handshake
            res = None
        assert res is None or res.status != 200
        bare.close()
