"""Only the console's own pages may use it: Host and Origin checks for every request and WebSocket.

The console holds the officer's credentials and has no login of its own (it listens on loopback). Any web
page the officer opens could otherwise reach ``http://127.0.0.1:PORT``: browsers let a foreign page open a
WebSocket there (no CORS for WebSockets) or send a form-like POST, and DNS rebinding lets a foreign name
resolve to 127.0.0.1. So a request must name this server in ``Host`` (loopback names or the configured
host), and when a browser sends ``Origin`` it must be that same server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class SameOriginOnly:
    """ASGI middleware: 403 (HTTP) or close 1008 (WebSocket) for a foreign Host or Origin."""

    def __init__(self, app: App, *, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    def allowed(self, scope: Scope) -> str | None:
        """None if allowed, else the reason."""
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
