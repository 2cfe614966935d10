"""One wording for why a connection to the broker failed, used by run, ingest, officer tools and selftest.

paho reports a refused TLS handshake as "Unspecified error" (TLS 1.3 sends the broker's alert after the
handshake) and swallows the exception of a failed connect; the OpenSSL reason it logs or raises is what
a technician needs, in a sentence that says what to check.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any

_PEER_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE_EXPIRED",
                 "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_UNKNOWN", "ACCESS_DENIED")
_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def _reason(text: str) -> str | None:
    m = _REASON.search(text)
    if m:
        return m.group(1)
    for word in _PEER_REFUSED:
        if word in text:
            return word
    return None


def connect_error_text(err: BaseException | str, *, host: str = "", port: int | None = None,
                       ca_file: object = None) -> str:
    """A one-line reason for a failed TCP/TLS connection to ``host:port``, naming what to check."""
    where = f"{host}:{port}" if port is not None else host or "the broker"
    text = str(err)
    if isinstance(err, ConnectionRefusedError) or "Connection refused" in text:
        return f"connection refused by {where} (broker not running, or wrong port)"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve host {host!r}: {err.strerror}"
    if isinstance(err, TimeoutError) or "timed out" in text:
        return f"no answer from {where} (network down or firewall)"
    if isinstance(err, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(err, "verify_message", None) or text
        return f"TLS: the broker's certificate is not trusted with {ca_file or 'the configured CA'}: {detail}"
    reason = _reason(text)
    if reason is not None and any(word in reason for word in _PEER_REFUSED):
        return (f"TLS handshake refused: {reason} from {where} (is the device certificate issued by a CA the "
                "broker trusts, and still valid?)")
    if isinstance(err, ssl.SSLError) or reason is not None:
        return f"TLS error with {where}: {reason or getattr(err, 'reason', None) or text}"
    if isinstance(err, OSError) and err.strerror:
        return f"cannot connect to {where}: {err.strerror}"
    return text


def tls_file_problem(tls: Any) -> str | None:
    """Which of the TLS files (``ca_file``, ``cert_file``, ``key_file`` of a TlsConfig) is missing or unreadable."""
    for what, path in (("CA file", tls.ca_file), ("certificate", tls.cert_file), ("key", tls.key_file)):
        if path is None:
            continue
        p = Path(path)
        if not p.is_file():
            return f"{what} {p} does not exist"
        if not os.access(p, os.R_OK):
            return f"{what} {p} is not readable by this user"
    return None
