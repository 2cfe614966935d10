"""Mutual TLS for a console that leaves loopback: who the client is comes from its certificate, never a header.

uvicorn checks the chain (``ssl_cert_reqs=CERT_REQUIRED`` against ``listen.client_ca``) during the handshake;
it does not hand the verified certificate to the application, so the two protocol classes here put it into
the ASGI scope as the TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM). The
``SameOriginOnly`` middleware then admits only the console's own officer (certificate CN).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from agent.core.errors import ConfigError
from agent.customs.console.config import ListenSection

App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def _with_client_cert(app: App, transport: Any) -> App:
    """``app`` with this connection's verified client certificate in every scope (None without TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []

    async def with_cert(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if ssl_object is not None and scope.get("type") in ("http", "websocket"):
            scope["extensions"] = {**(scope.get("extensions") or {}),
                                   "tls": {"client_cert_chain": chain, "client_cert_error": None}}
        await app(scope, receive, send)

    return with_cert


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, passing the verified client certificate to the application."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_client_cert(self.app, transport)  # type: ignore[arg-type, assignment]


class ClientCertWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (after the h11 upgrade), passing the client certificate on too."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.app = _with_client_cert(self.app, transport)  # type: ignore[arg-type, assignment]


def client_cert(scope: MutableMapping[str, Any]) -> x509.Certificate | None:
    """The verified client certificate of a request (None: no TLS, or none presented)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    try:
        return x509.load_pem_x509_certificate(chain[0].encode()) if chain else None
    except ValueError:
        return None


def server_names(cert_file: Path) -> tuple[str, ...]:
    """Host names and addresses the console's certificate is valid for (the names a browser may use)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) if ip.version == 4 else f"[{ip}]" for ip in san.get_values_for_type(x509.IPAddress)
           if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)]
    return (*san.get_values_for_type(x509.DNSName), *ips)


def uvicorn_tls(listen: ListenSection) -> dict[str, Any]:
    """uvicorn.Config keywords for ``listen`` (empty: plain HTTP on loopback); ConfigError naming the key whose
    file is unusable, checked before uvicorn would fail with a traceback."""
    if listen.tls_cert is None or listen.tls_key is None:
        return {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(listen.tls_cert), str(listen.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"listen.tls_cert {listen.tls_cert} / listen.tls_key {listen.tls_key}: cannot load: "
                          f"{exc}") from None
    out: dict[str, Any] = {"ssl_certfile": str(listen.tls_cert), "ssl_keyfile": str(listen.tls_key),
                           "http": ClientCertH11Protocol, "ws": ClientCertWebSocketProtocol}
    if listen.client_ca is not None:
        try:
            x509.load_pem_x509_certificates(listen.client_ca.read_bytes())
            ctx.load_verify_locations(str(listen.client_ca))
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"listen.client_ca {listen.client_ca}: {exc}") from None
        out.update(ssl_ca_certs=str(listen.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return out
