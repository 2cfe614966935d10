"""The officer console: a local web application (fleet view, verified live HD video, officer actions).

The officer's mutual-TLS identity and signing key stay in this server process; the browser talks HTTP and
WebSocket to 127.0.0.1 only. ``app.create_app`` builds the application from a ``ConsoleServices``; each
resource has its own router (``fleet``, ``live``, ``actions``, ``pages``), so more pages plug in the same way.
"""
