"""Progress bars for long commands (verify, export, drain) -- on stderr, and only when stderr is a terminal.

Output that scripts read (stdout, ``--json``) never changes; a pipe or a log file gets no bar at all.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """``with Progress("verifying", total) as p: p.advance()`` -- a rich bar, or nothing off a terminal."""

    def __init__(self, what: str, total: int | None = None, *, unit: str = "items",
                 enabled: bool | None = None) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn(self.unit), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def update(self, completed: int, total: int | None = None, what: str | None = None) -> None:
        if self._bar is not None:
            kw: dict[str, Any] = {"completed": completed}
            if total is not None:
                kw["total"] = total
            if what is not None:
                kw["description"] = what
            self._bar.update(self._task, **kw)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
