"""Camera backends behind one small base class; each camera library is imported only by its backend."""

from agent.capture.base import (
    BACKENDS,
    CaptureBackend,
    CaptureSettings,
    EndOfStream,
    backend_class,
    encode_jpeg,
    open_backend,
)

__all__ = [
    "BACKENDS",
    "CaptureBackend",
    "CaptureSettings",
    "EndOfStream",
    "backend_class",
    "encode_jpeg",
    "open_backend",
]
