"""``evidence-officer``'s entry point: one clear line, not a traceback, when the customs extra is missing.

A device installs ``evidence-agent`` without the customs wing's dependencies (WeasyPrint, Babel, FastAPI,
uvicorn, Jinja2, psycopg); the officer tools need ``pip install 'evidence-agent[customs]'``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

# top-level modules of the ``customs`` extra (pyproject.toml): a missing one means the extra is not installed
CUSTOMS_MODULES = ("weasyprint", "jinja2", "babel", "fastapi", "uvicorn", "websockets", "psycopg")
EXIT_MISSING_EXTRA = 2  # the usage/config error code, as for a bad argument


def missing_modules() -> list[str]:
    """The customs extra's modules this environment cannot import (found without importing them)."""
    return [name for name in CUSTOMS_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the officer CLI, or say which extra to install when its dependencies are absent."""
    missing = missing_modules()
    if missing:
        print(f"evidence-officer: the customs tools need the 'customs' extra ({', '.join(missing)} not installed): "
              "pip install 'evidence-agent[customs]'", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    from agent.customs.cli import main as officer_main

    return officer_main(argv)
