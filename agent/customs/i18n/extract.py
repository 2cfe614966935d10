"""Babel extractors for what ``pybabel extract`` cannot read by itself (named in ``babel.cfg``):

* the console's HTML pages: the text of every element with a ``data-i18n`` attribute, and the attributes
  named by ``data-i18n-attr`` (e.g. ``placeholder title``), whitespace collapsed as the pages' script does;
* ``agent/core/vocab.py``: the words of every ``*_LABELS`` / ``*_TITLES`` dictionary (outcomes, decisions,
  check-in steps, event types, record kinds), which the foundation keeps free of any gettext import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import IO, Any

Extracted = tuple[int, str | None, str, list[str]]


def _norm(text: str) -> str:
    return " ".join(text.split())


class _Marked(HTMLParser):
    VOID = frozenset({"input", "img", "br", "meta", "link", "hr", "source", "col", "area", "base", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self.open: list[tuple[str, int, list[str]] | None] = []  # per open element: (tag, line, text) if marked

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        line = self.getpos()[0]
        for name in (a.get("data-i18n-attr") or "").split():
            if a.get(name):
                self.found.append((line, _norm(a[name] or "")))
        if tag in self.VOID:
            return
        self.open.append((tag, line, []) if "data-i18n" in a else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in (a.get("data-i18n-attr") or "").split():
            if a.get(name):
                self.found.append((self.getpos()[0], _norm(a[name] or "")))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or not self.open:
            return
        top = self.open.pop()
        if top is not None and _norm("".join(top[2])):
            self.found.append((top[1], _norm("".join(top[2]))))

    def handle_data(self, data: str) -> None:
        for top in self.open:
            if top is not None:
                top[2].append(data)


def extract_html(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[Extracted]:
    """Messages of one console page (``data-i18n`` text and ``data-i18n-attr`` attributes)."""
    parser = _Marked()
    parser.feed(fileobj.read().decode(options.get("encoding", "utf-8")))
    parser.close()
    for line, text in parser.found:
        yield line, None, text, []


def extract_vocab(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[Extracted]:
    """The words of the vocabulary's label dictionaries (their values, in order)."""
    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        value = getattr(node, "value", None)
        if not isinstance(target, ast.Name) or not target.id.endswith(("_LABELS", "_TITLES")) \
                or not isinstance(value, ast.Dict):
            continue
        for v in value.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                yield v.lineno, None, v.value, []
