"""The catalogue at run time: the committed ``.po`` files are read with Babel and compiled in memory (no ``.mo``
binaries in the package), then served as ``gettext`` translations (the report's Jinja2 templates) or as a plain
``msgid -> msgstr`` map (the console pages, ``/api/i18n``).

Languages: ``zh`` (Simplified Chinese, locale ``zh_Hans``) and ``en``. The report may also be ``zh-en``:
every heading and label in Chinese with the English beside or below it. Message ids are the English text.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Final

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

HERE: Final = Path(__file__).resolve().parent
LOCALE_DIR: Final = HERE / "locale"
POT: Final = HERE / "messages.pot"
MAPPING: Final = HERE / "babel.cfg"
#: The console's languages and the catalogue locale of each.
LANGS: Final = {"zh": "zh_Hans", "en": "en"}
#: The report's choices: one language, or both (Chinese first).
REPORT_LANGS: Final = ("zh-en", "zh", "en")
DEFAULT_REPORT_LANG: Final = "zh-en"
DEFAULT_CONSOLE_LANG: Final = "en"


def po_path(lang: str) -> Path:
    return LOCALE_DIR / LANGS[lang] / "LC_MESSAGES" / "messages.po"


@cache
def catalog(lang: str) -> Catalog:
    """The ``.po`` catalogue of ``lang`` (``zh`` or ``en``)."""
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=LANGS[lang], domain="messages")


@cache
def translations(lang: str) -> Translations:
    """``lang``'s catalogue compiled in memory; fuzzy entries are left out (their msgid is shown instead)."""
    buf = io.BytesIO()
    write_mo(buf, catalog(lang), use_fuzzy=False)
    buf.seek(0)
    return Translations(buf, domain="messages")


@cache
def messages(lang: str) -> dict[str, str]:
    """``msgid -> msgstr`` of every translated, non-fuzzy message (what the console pages apply)."""
    return {str(m.id): str(m.string) for m in catalog(lang) if m.id and isinstance(m.string, str) and m.string
            and not m.fuzzy}


def gettext(lang: str) -> Callable[[str], str]:
    """Plain-text ``gettext`` of ``lang``; for ``zh-en``, "中文 / English" (one line, no markup)."""
    if lang == "zh-en":
        zh, en = translations("zh").gettext, translations("en").gettext

        def both(msgid: str) -> str:
            a, b = zh(msgid), en(msgid)
            return a if a == b else f"{a} / {b}"

        return both
    return translations(lang).gettext


def markup_gettext(lang: str) -> Callable[[str], str]:
    """The report templates' ``gettext``: one language as is; ``zh-en`` as two spans (``.zh`` then ``.en``)
    that the print stylesheet sets side by side ("检查结论 / Outcome") or, in a ``.bi`` block, one under the
    other. Translations are package files (trusted markup); Jinja2 escapes the values formatted into them."""
    if lang != "zh-en":
        return translations(lang).gettext
    zh, en = translations("zh").gettext, translations("en").gettext

    def both(msgid: str) -> str:
        a, b = zh(msgid), en(msgid)
        if a == b:
            return a
        return f'<span class="zh" lang="zh-Hans">{a}</span><span class="en" lang="en">{b}</span>'

    return both


def negotiate(choice: str | None, accept_language: str | None) -> str:
    """The console's language: an explicit choice (cookie or query) if it is one we have, else the first
    of ``Accept-Language`` we have (by weight), else English."""
    if choice in LANGS:
        return choice
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > 0:
            ranked.append((-q, n, primary))
    return sorted(ranked)[0][2] if ranked else DEFAULT_CONSOLE_LANG


def label(lang: str, msgid: str | None) -> str | None:
    """A vocabulary label (English words from ``agent.core.vocab``) in ``lang``; ``None`` stays ``None``."""
    return None if msgid is None else gettext(lang)(msgid)
