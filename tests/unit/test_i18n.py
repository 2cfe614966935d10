"""The customs catalogue (agent/customs/i18n): complete, translated, consistent, and safe in the templates.

Completeness is checked with the real ``pybabel extract`` (the mapping file the docs give): every string the
report, the signature page and the console pages mark is in the committed ``messages.pot``, and every message
has a non-empty, non-fuzzy Chinese and English translation with the same placeholders."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from agent.customs.i18n import catalog
from agent.customs.i18n.extract import extract_html, extract_vocab
from agent.customs.inspection import html as report_html
from tests.support.helpers import REPO

PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+\}")


def msgids(pot: Path) -> set[str]:
    with pot.open("rb") as f:
        return {str(m.id) for m in read_po(f) if m.id}


def test_committed_template_is_what_extraction_finds(tmp_path: Path) -> None:
    pybabel = shutil.which("pybabel", path=str(Path(sys.executable).parent))
    assert pybabel, "Babel's pybabel is installed with the project"
    out = tmp_path / "messages.pot"
    res = subprocess.run([pybabel, "extract", "-F", str(catalog.MAPPING), "-k", "t", "-k", "N_", "--no-location",
                          "--sort-output", "-o", str(out), "."], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    fresh, committed = msgids(out), msgids(catalog.POT)
    assert fresh - committed == set(), "new strings: run pybabel extract and update (docs/inspections.md)"
    assert committed - fresh == set(), "strings no page uses any more: re-extract and update"
    assert len(fresh) > 300


@pytest.mark.parametrize("lang", sorted(catalog.LANGS))
def test_every_message_is_translated_with_its_placeholders(lang: str) -> None:
    ids = msgids(catalog.POT)
    cat = catalog.catalog(lang)
    entries = {str(m.id): m for m in cat if m.id}
    assert set(entries) == ids, f"{catalog.po_path(lang)} is not updated from messages.pot"
    for msgid, m in entries.items():
        assert isinstance(m.string, str) and m.string.strip(), f"{lang}: no translation for {msgid!r}"
        assert not m.fuzzy, f"{lang}: fuzzy translation for {msgid!r}"
        assert sorted(PLACEHOLDER.findall(m.string)) == sorted(PLACEHOLDER.findall(msgid)), (lang, msgid)
        assert m.string.count("<b>") == msgid.count("<b>"), (lang, msgid)
    assert catalog.messages(lang)["Case"] == {"zh": "案件", "en": "Case"}[lang]


def test_chinese_catalogue_is_chinese() -> None:
    """Every zh message with letters in it carries Chinese characters (no English copied over)."""
    latin_only = [m for m, s in catalog.messages("zh").items() if re.search("[A-Za-z]{3}", re.sub(
        r"%\([a-z_]+\)s|\{[a-z_]+\}|<[^>]+>", "", m)) and not re.search("[\u4e00-\u9fff]", s)]
    assert latin_only == ["GPS"], latin_only  # the receiver's name stays


@pytest.mark.parametrize(("choice", "header", "lang"), [
    (None, None, "en"), (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"), (None, "en-GB,en;q=0.9,zh;q=0.8", "en"),
    (None, "fr-FR, zh-Hans;q=0.5", "zh"), (None, "de", "en"), ("en", "zh-CN", "en"), ("zh", None, "zh"),
    ("xx", "zh-TW;q=0.1, en;q=0.9", "en"), (None, "zh;q=abc, en;q=0", "en"), (None, "x" * 5000, "en"),
])
def test_language_negotiation(choice: str | None, header: str | None, lang: str) -> None:
    assert catalog.negotiate(choice, header) == lang


def test_bilingual_gettext_escapes_what_is_formatted_into_it() -> None:
    env = report_html._env("zh-en")
    page = env.from_string('<td>{{ _("%(n)s min", n=value) }}</td><h2>{{ _("Case and parties") }}</h2>').render(
        value="<script>x</script>")
    assert page.count("&lt;script&gt;x&lt;/script&gt;") == 2 and "<script>" not in page
    assert '<span class="zh" lang="zh-Hans">&lt;script&gt;x&lt;/script&gt; 分钟</span>' in page
    assert ('<span class="zh" lang="zh-Hans">案件与当事方</span><span class="en" lang="en">Case and parties</span>'
            in page)
    for lang, want in (("zh", "<h2>案件与当事方</h2>"), ("en", "<h2>Case and parties</h2>")):
        out = report_html._env(lang).from_string('<h2>{{ _("Case and parties") }}</h2>').render()
        assert out == want


def test_plain_gettext_and_vocabulary_labels() -> None:
    assert catalog.gettext("zh-en")("Completed remotely") == "远程完成 / Completed remotely"
    assert catalog.gettext("zh")("Too dark") == "画面过暗"
    assert catalog.gettext("zh")("GPS") == "GPS" and catalog.gettext("zh-en")("GPS") == "GPS"
    assert catalog.label("zh", None) is None and catalog.label("zh", "<b>unknown</b>") == "<b>unknown</b>"
    with pytest.raises(ValueError, match="report language 'fr'"):
        report_html.render(None, [], {}, officer="o", officer_key_id="k", lang="fr")  # type: ignore[arg-type]


def test_signature_page_words_come_from_the_catalogue() -> None:
    from agent.customs.legal.page import signature_page_html
    from agent.pades.check import Signer

    page = signature_page_html(Signer(common_name="<b>x</b>", legal_name=None, badge=None, organization=None,
                                      subject="CN=x"))
    assert "签署 Signatures" in page and "海关官员 Customs officer" in page and "警号 Badge" in page
    assert "企业 Enterprise" in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_page_extractor_reads_marked_text_and_attributes() -> None:
    page = b"""<title data-i18n>Fleet \xe2\x80\x94 console</title><label><span data-i18n>Case
      number</span> <input data-i18n-attr="placeholder title" placeholder="a note" title="why"></label>
      <p>not marked</p><br><button data-i18n>OK</button><input placeholder="not marked">"""
    got = [m for _line, _f, m, _c in extract_html(io.BytesIO(page), [], [], {})]
    assert got == ["Fleet — console", "Case number", "a note", "why", "OK"]
    words = [m for _l, _f, m, _c in extract_vocab((REPO / "agent/core/vocab.py").open("rb"), [], [], {})]
    assert "Shifted to an on-site inspection" in words and "Too dark" in words and "Power of attorney" in words
