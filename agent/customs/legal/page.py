"""The signature page appended to the report before the officer signs: who signs, and the two signature boxes.

Rendered by WeasyPrint from escaped text (the certificate's names are never markup), bilingual (Simplified
Chinese, then English, from the customs catalogue), A4, in one font face (each face embeds its own CJK subset, ~130 KB).
The boxes are the widgets of the ``OfficerSignature`` and ``EnterpriseSignature``
fields; pyHanko draws each signature's appearance into its box when it is signed.
"""

from __future__ import annotations

import html
import io
import logging
from typing import Any

from agent.customs.i18n import N_
from agent.customs.i18n.catalog import translations
from agent.pades.check import Signer
from agent.pades.sign import Box

A4_W, A4_H = 595, 842  # points
_BOX_W, _BOX_H, _LEFT = 240, 70, 57
OFFICER_TOP, ENTERPRISE_TOP = 300, 520  # points from the top of the page
OFFICER_BOX: Box = (_LEFT, A4_H - OFFICER_TOP - _BOX_H, _LEFT + _BOX_W, A4_H - OFFICER_TOP)
ENTERPRISE_BOX: Box = (_LEFT, A4_H - ENTERPRISE_TOP - _BOX_H, _LEFT + _BOX_W, A4_H - ENTERPRISE_TOP)

_CSS = f"""
@page {{ size: {A4_W}pt {A4_H}pt; margin: 0 }}
body {{ font-family: "Noto Sans CJK SC", "Noto Sans", sans-serif; font-size: 10pt; margin: 0 }}
.at {{ position: absolute; left: {_LEFT}pt; width: {A4_W - 2 * _LEFT}pt }}
.box {{ position: absolute; left: {_LEFT}pt; width: {_BOX_W}pt; height: {_BOX_H}pt; border: 0.5pt dashed #888 }}
h1, b, code {{ font: inherit; font-weight: normal }}
h1 {{ font-size: 16pt; margin: 0 }} b {{ font-size: 11pt }}
p {{ margin: 0 0 4pt 0 }} .small {{ font-size: 8.5pt; color: #333 }}
"""


def signature_page_html(officer: Signer, title: str | None = None) -> str:
    """The page's HTML (Chinese, then English; words from the customs catalogue); every certificate value is
    escaped."""
    e = html.escape
    zh, en = translations("zh").gettext, translations("en").gettext

    def both(msgid: str, sep: str = " ") -> str:
        return f"{e(zh(msgid))}{sep}{e(en(msgid))}"

    name = e(officer.legal_name or officer.common_name)
    badge = e(officer.badge) if officer.badge else "—"
    org = e(officer.organization or "")
    heading = f"<p>{e(title)}</p>" if title else ""
    signatures, officer_role, badge_word = both(N_("Signatures")), both(N_("Customs officer")), both(N_("Badge"))
    enterprise = both(N_("Enterprise"))
    pades = both(N_("This report is signed electronically (PAdES). The signature panel of any PDF reader shows who "
                    "signed it and whether the document changed after each signature."), "<br>")
    countersign = both(N_("The enterprise countersigns and seals, or signs a dispute note instead (shown as the "
                          "signature's reason)."), "<br>")
    check = both(N_("Check:")) + " <code>evidence-agent verify-pdf</code> · <code>pyhanko sign validate</code>"
    return f"""<!doctype html><html lang="zh-Hans"><head><meta charset="utf-8"><style>{_CSS}</style></head><body>
<div class="at" style="top:60pt"><h1>{signatures}</h1>{heading}
<p class="small">{pades} {check}</p></div>
<div class="at" style="top:{OFFICER_TOP - 70}pt"><p><b>{officer_role}</b></p>
<p>{name} · {badge_word} {badge} · {org}</p></div>
<div class="box" style="top:{OFFICER_TOP}pt"></div>
<div class="at" style="top:{ENTERPRISE_TOP - 70}pt"><p><b>{enterprise}</b></p>
<p class="small">{countersign}</p></div>
<div class="box" style="top:{ENTERPRISE_TOP}pt"></div>
</body></html>"""


def render_signature_page(officer: Signer, title: str | None = None) -> bytes:
    """The signature page as a one-page PDF."""
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import weasyprint

    pdf: bytes | None = weasyprint.HTML(string=signature_page_html(officer, title)).write_pdf()
    assert pdf is not None
    return pdf


def appender(page_pdf: bytes) -> Any:
    """A ``before`` hook for ``sign_pdf``: appends ``page_pdf``'s first page as the document's last page."""

    def add(writer: Any) -> None:
        from pyhanko.pdf_utils import generic as pdf_generic
        from pyhanko.pdf_utils.reader import PdfFileReader

        generic: Any = pdf_generic

        xobj = writer.import_page_as_xobject(PdfFileReader(io.BytesIO(page_pdf)), 0)
        content = writer.add_object(generic.StreamObject(stream_data=b"q /SigPage Do Q"))
        page = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(generic.NumberObject(v) for v in (0, 0, A4_W, A4_H)),
            generic.NameObject("/Resources"): generic.DictionaryObject({
                generic.NameObject("/XObject"): generic.DictionaryObject({generic.NameObject("/SigPage"): xobj})}),
            generic.NameObject("/Contents"): content})
        writer.insert_page(page)

    return add
