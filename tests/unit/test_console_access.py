"""Who may use the console: loopback peers, or the console's officer by TLS client certificate; config checks."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.core.errors import ConfigError
from agent.customs.console.config import ListenSection, check_listen
from agent.customs.console.origin import SameOriginOnly
from agent.customs.keys import init_officer


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never reached when refused
    raise AssertionError("reached")


def _scope(client: str, host: str = "127.0.0.1:8470", cert_pem: str | None = None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "client": (client, 50000), "headers": [(b"host", host.encode())]}
    if cert_pem is not None:
        scope["extensions"] = {"tls": {"client_cert_chain": [cert_pem]}}
    return scope


def test_on_loopback_a_lan_peer_is_refused_whatever_its_host_header() -> None:
    mw = SameOriginOnly(_app)
    assert mw.allowed(_scope("127.0.0.1")) is None
    assert mw.allowed(_scope("::1", "[::1]:8470")) is None
    reason = mw.allowed(_scope("192.0.2.9", "127.0.0.1"))
    assert reason is not None and "not a loopback address" in reason


def test_with_mutual_tls_only_the_officers_certificate_counts(tmp_path: Path) -> None:
    alice = init_officer(tmp_path / "a", "officer-alice").cert.public_bytes(serialization.Encoding.PEM).decode()
    bob = init_officer(tmp_path / "b", "officer-bob").cert.public_bytes(serialization.Encoding.PEM).decode()
    mw = SameOriginOnly(_app, hosts=("127.0.0.1", "console.customs.example"), officer="officer-alice")
    assert mw.allowed(_scope("192.0.2.9", "console.customs.example:8470", alice)) is None
    assert "no verified client certificate" in (mw.allowed(_scope("192.0.2.9", "127.0.0.1")) or "")
    assert "officer-bob" in (mw.allowed(_scope("192.0.2.9", "127.0.0.1", bob)) or "")
    assert "Host" in (mw.allowed(_scope("192.0.2.9", "evil.example", alice)) or "")


@pytest.mark.parametrize("listen, key", [
    ({"host": "0.0.0.0"}, "listen.client_ca"),
    ({"host": "192.0.2.2", "tls_cert": "c.pem", "tls_key": "k.pem"}, "listen.client_ca"),
    ({"host": "console.customs.example", "client_ca": "ca.pem"}, "listen.tls_cert"),
    ({"host": "127.0.0.1", "tls_cert": "c.pem"}, "listen.tls_key"),
])
def test_a_console_off_loopback_needs_mutual_tls(listen: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_listen(ListenSection.model_validate(listen), "console.toml")
    assert str(info.value).startswith(f"console.toml: {key}:"), info.value


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_nothing(host: str) -> None:
    check_listen(ListenSection(host=host), "console.toml")
    assert ListenSection(host=host).loopback


def test_mutual_tls_settings_reach_uvicorn(tmp_path: Path) -> None:
    from agent.customs.broker.setup import _fleet_ca, _server
    from agent.customs.console.tls import server_names, uvicorn_tls

    ca_key, ca = _fleet_ca(tmp_path, "Customs")
    cert, key = _server((ca_key, ca), "console.customs.example")
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    listen = ListenSection(host="0.0.0.0", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem",
                           client_ca=tmp_path / "ca" / "ca.pem")
    kw = uvicorn_tls(listen)
    assert kw["ssl_cert_reqs"] == ssl.CERT_REQUIRED and kw["ssl_ca_certs"] == str(tmp_path / "ca" / "ca.pem")
    assert server_names(tmp_path / "c.pem") == ("console.customs.example",)
    with pytest.raises(ConfigError, match=r"listen\.client_ca"):
        uvicorn_tls(listen.model_copy(update={"client_ca": tmp_path / "missing.pem"}))
