"""The console in Simplified Chinese, in Debian's chromium (Playwright), against the console process (Mosquitto with
TLS behind it; no device needed for these pages).

An officer whose browser asks for Chinese (Accept-Language zh-CN) opens an inspection from the list form and lands
on the case: every marked string, title, placeholder and script-built word (buttons, check-in steps from the
vocabulary, timer, state, site map key) is Chinese and none of the catalogue's English is left on the page. The
header's switch changes the language and the choice is remembered (a cookie); a browser asking for English, or
for nothing we have, gets English."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from agent.customs.i18n import catalog
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser

CASE = "C-2026/0177"
POLYGON = "31.2294,121.4727;31.2294,121.4747;31.2314,121.4747;31.2314,121.4727"
T = 60_000  # ms: every wait in the page is bounded
SHOT = os.environ.get("I18N_SCREENSHOT")  # a path: keep a picture of the Chinese page to look at

# Whatever the page shows of the catalogue in English: every message whose Chinese differs, placeholders aside.
ENGLISH = [m for m, zh in catalog.messages("zh").items() if zh != m and len(m) >= 4 and not re.search(r"[{%<]", m)]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_browser()
    root = tmp_path_factory.mktemp("i18n")
    st: ConsoleStack = build_console_stack(root)
    try:
        st.device_config("cam-zh", "farm-zh")  # its CA is the console's device CA; the device is not started
        _proc, url = st.start_console("officer-alice", extra_toml=f'[inspections]\ndata = "{root / "data"}"\n')
        yield url
    finally:
        st.close()


def untranslated(page: Any) -> list[str]:
    """Marked elements and attributes (visible or not) still showing their English message id."""
    return list(page.evaluate("""() => {
      const out = [];
      for (const e of document.querySelectorAll("[data-i18n]")) {
        const id = e.dataset.i18nId;
        if (e.textContent === id && (I18N.messages[id] || id) !== id) out.push(id);
        if (e.dataset.i18nId === undefined) out.push("never applied: " + e.textContent);
      }
      for (const e of document.querySelectorAll("[data-i18n-attr]"))
        for (const a of e.dataset.i18nAttr.split(/\\s+/))
          if (e.getAttribute(a) && e.getAttribute(a) === e.dataset[`i18n${a[0].toUpperCase()}${a.slice(1)}Id`]
              && I18N.messages[e.getAttribute(a)] !== e.getAttribute(a)) out.push(a + ": " + e.getAttribute(a));
      return out;
    }"""))


def english_left(text: str) -> list[str]:
    return [m for m in ENGLISH if re.search(rf"(?<![A-Za-z]){re.escape(m)}(?![A-Za-z])", text)]


def test_inspection_page_in_chinese(console: str) -> None:
    with chromium() as browser:
        ctx = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1100})
        page = ctx.new_page()
        page.goto(console + "/inspections", timeout=T)
        page.wait_for_function("document.documentElement.lang === 'zh-Hans'", timeout=T)
        assert page.title() == "检查 — 取证官员控制台"
        assert page.inner_text("header h1") == "取证官员控制台" and untranslated(page) == []
        assert page.get_attribute("#open-form button[type=submit]", "data-i18n-id") == "Open inspection"
        assert page.inner_text("#open-form h2") == "新建检查"
        form = {"case": CASE, "enterprise": "绿野有限公司", "representative": "李伟", "registered_site": "上海一号仓",
                "device": "cam-zh", "site": "farm-zh", "officers": "officer-alice", "polygon": POLYGON}
        for name, value in form.items():
            page.fill(f"#open-form [name={name}]", value)
        page.click("#btn-open")
        page.wait_for_selector("#case-view:not([hidden])", timeout=T)
        page.wait_for_function("document.querySelector('#checkin tbody').children.length === 4", timeout=T)
        page.wait_for_function("document.querySelector('#case-title').textContent.includes('已建立')", timeout=T)
        assert page.inner_text("#btn-ready") == "1. 设备自检" and page.inner_text("#btn-report") == "生成签名报告"
        assert page.inner_text("#timer") == "计划 25:00" and page.inner_text("#readiness") == "尚未请求"
        steps = page.inner_text("#checkin")
        assert "登记场所位置" in steps and "授权委托书" in steps and "未完成" in steps and "确认" in steps
        assert page.get_attribute("#note", "placeholder") == "备注（展示了什么、在哪里、为什么）"
        assert page.is_disabled("#btn-end")
        assert page.get_attribute("#btn-end", "title") == "案件处于“已建立”状态时不可用"
        page.wait_for_function("document.querySelector('#map svg') !== null", timeout=T)
        assert "场所（绿）" in page.inner_html("#map")  # the server-drawn map's key, in the officer's language
        assert page.inner_text("#decision option[value=continue]") == "继续远程检查"
        assert untranslated(page) == []
        text = page.inner_text("body")
        assert english_left(text) == [], english_left(text)
        assert "绿野有限公司" in page.inner_text("#case-sub")  # the session's own strings, as entered
        if SHOT:
            page.screenshot(path=SHOT, full_page=True)
        ctx.close()


def test_switch_is_remembered_and_english_is_the_default(console: str) -> None:
    with chromium() as browser:
        ctx = browser.new_context(locale="zh-CN")
        page = ctx.new_page()
        page.goto(console + "/fleet", timeout=T)
        page.wait_for_selector("#lang-switch button[data-lang=en]", timeout=T)
        assert page.inner_text("#fleet thead").split()[:2] == ["状态", "场所"] and untranslated(page) == []
        with page.expect_navigation(timeout=T):
            page.click("#lang-switch button[data-lang=en]")
        page.wait_for_selector("#lang-switch button.on[data-lang=en]", timeout=T)
        assert page.inner_text("header h1") == "Evidence officer console"
        page.goto(console + "/search", timeout=T)  # another page: the cookie holds the choice
        page.wait_for_selector("#lang-switch button.on[data-lang=en]", timeout=T)
        assert page.inner_text("#btn-search") == "Search" and page.title() == "Search — evidence officer console"
        assert [c["value"] for c in ctx.cookies() if c["name"] == "lang"] == ["en"]
        with page.expect_navigation(timeout=T):
            page.click("#lang-switch button[data-lang=zh]")
        page.wait_for_selector("#lang-switch button.on[data-lang=zh]", timeout=T)
        assert page.inner_text("#btn-search") == "检索" and untranslated(page) == []
        ctx.close()
        for locale in ("en-US", "fr-FR"):
            ctx = browser.new_context(locale=locale)
            page = ctx.new_page()
            page.goto(console + "/search", timeout=T)
            page.wait_for_selector("#lang-switch button.on[data-lang=en]", timeout=T)
            assert page.inner_text("header h1") == "Evidence officer console"
            ctx.close()
