"""The report in each language, through `evidence-officer inspection report --lang`: the PDF's text (pdftotext)
carries the Chinese headings, the English ones or both; its CJK glyphs come from Noto Sans CJK SC, embedded."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.report_bundle import officer_report, seal_inspection

ZH = ("案件与当事方", "签到核验", "时间线", "警报与决定", "核验状态", "如何核验本报告", "附件：检查中的每一项",
      "检查结论", "已转为现场检查", "画面过暗")
EN = ("Case and parties", "Check-in", "Timeline", "Alerts and decisions", "Verification status",
      "How to verify this report", "Annex: every item in the inspection", "outcome",
      "Shifted to an on-site inspection", "Too dark")
HAN = re.compile("[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("langs")
    b = seal_inspection(root)
    b.close()
    return root, b


def report(built: tuple[Path, object], lang: str | None) -> tuple[str, str, str]:
    root, b = built
    out = root / f"out-{lang}"
    again = ["--reason", f"the report in {lang}"] if list(root.glob("out-*")) else []  # a new version each time
    res = officer_report(b, out, *(["--lang", lang] if lang else []), *again)  # type: ignore[arg-type]
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]  # --no-seal: a draft
    doc = json.loads(res.stdout)
    pdf = Path(doc["pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split()), fonts, Path(doc["html"]).read_text()


def test_default_report_is_chinese_with_english(built: tuple[Path, object]) -> None:
    text, fonts, html = report(built, None)
    for zh, en in zip(ZH, EN, strict=True):
        assert zh in text and en in text, (zh, en)
    assert "案件与当事方 / Case and parties" in text and "检查结论 / outcome" in text
    assert "远程检查报告 / Remote inspection report — C-2026/0099" in text  # the page footer
    assert "Noto-Sans-CJK-SC" in fonts and "签署 Signatures" in text  # the signature page, appended when signed
    assert '<html lang="zh-Hans"' in html


def test_chinese_only_report(built: tuple[Path, object]) -> None:
    text, fonts, _html = report(built, "zh")
    assert all(zh in text for zh in ZH)
    body = text.split("签署 Signatures")[0]  # the PAdES signature page is bilingual in every report
    assert not [en for en in EN[:7] if en in body]
    assert "Noto-Sans-CJK-SC" in fonts


def test_english_only_report(built: tuple[Path, object]) -> None:
    text, _fonts, html = report(built, "en")
    assert all(en in text for en in EN)
    body = text.split("签署 Signatures")[0]
    assert HAN.findall(body) == [], HAN.findall(body)[:20]
    assert '<html lang="en"' in html


def test_unknown_language_is_one_clear_line(built: tuple[Path, object]) -> None:
    _root, b = built
    res = officer_report(b, _root / "bad", "--lang", "fr")  # type: ignore[arg-type]
    assert res.returncode == 2 and "invalid choice: 'fr'" in res.stderr and "Traceback" not in res.stderr
