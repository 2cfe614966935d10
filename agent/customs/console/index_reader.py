"""The console's read-only handle on the customs index, reopened after a failed query."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException

from agent.customs.store.base import Index

log = logging.getLogger(__name__)
T = TypeVar("T")


class IndexReader:
    """The console's one read-only index handle; one query at a time (a DB-API connection is not shared).

    A failed query (the database restarted, the network dropped) closes the handle; the next request
    opens a fresh one through ``opener``, so the page recovers without restarting the console.
    """

    def __init__(self, index: Index, label: str, opener: Callable[[], Index] | None = None) -> None:
        self.index: Index | None = index
        self.label = label  # for messages: a path, or a URL without its password
        self.opener = opener
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Index], T]) -> T:
        with self._lock:
            try:
                if self.index is None:
                    if self.opener is None:
                        raise RuntimeError("closed")
                    self.index = self.opener()
                return fn(self.index)
            except Exception as exc:  # either driver's errors: the page gets one line, the log the detail
                log.warning("index %s: query failed: %s", self.label, exc, exc_info=True)
                if self.index is not None and self.opener is not None:
                    with contextlib.suppress(Exception):
                        self.index.close()
                    self.index = None
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise HTTPException(503, f"index {self.label}: {first}") from None

    def close(self) -> None:
        with self._lock:
            if self.index is not None:
                self.index.close()
                self.index = None
