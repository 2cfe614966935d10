"""Digital zoom from the console in Debian's chromium (Playwright), through the real processes: Mosquitto with TLS
(`evidence-officer broker-setup`), a device (`evidence-agent run --config`, synthetic camera), `evidence-officer
ingest` and the console.

In a started case the inspection screen embeds the live view: its + button, a click on the zoomed picture (pan)
and 1× send the signed view.zoom; the picture's overlay says "zoom 2.0x" and draws the region on a mini-map from
what the device signed in the fragments; each change is sealed on the device and listed in the case. The time from
a click to the first verified fragment saying the new zoom is printed (no timing assert).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser

CASE = "C-2026/0777"
DEVICE, SITE = "cam-zb", "farm-zb"
LAT, LON = 31.2304, 121.4737
POLYGON = ";".join(f"{a},{b}" for a, b in ((LAT - 0.001, LON - 0.001), (LAT - 0.001, LON + 0.001),
                                            (LAT + 0.001, LON + 0.001), (LAT + 0.001, LON - 0.001)))
T = 60_000  # ms: every wait in the page is bounded


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("zoom-browser")
    st: ConsoleStack = build_console_stack(root, broker_setup={DEVICE: SITE})
    try:
        received = st.start_ingest(index=True)
        st.start_device(st.device_config(DEVICE, SITE, width=640, height=360, fps=10))
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{root / "console-data"}"\nevidence = "{received}"\n'
            f'[index]\nurl = "{root / "index.sqlite"}"\n'), width=640, height=360, fps=10)
        yield {"url": url, "st": st}
    finally:
        st.close()


def post(page: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A same-origin POST from the page (as its own scripts do); returns status and JSON."""
    out: dict[str, Any] = page.evaluate("""async ([path, body]) => {
        const r = await fetch(path, {method: "POST", headers: {"content-type": "application/json"},
                                     body: JSON.stringify(body)});
        return {status: r.status, json: await r.json().catch(() => null)};
    }""", [path, body])
    return out


def test_zoom_buttons_change_the_live_view_draw_the_overlay_and_land_in_the_case(stack: dict[str, Any]) -> None:
    url = stack["url"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/inspections")
        opened = post(page, "/api/inspections", {"case": CASE, "enterprise": "Green Fields Ltd", "device": DEVICE,
                                                 "site": SITE, "polygon": POLYGON})
        assert opened["status"] == 200, opened
        q = f"?case={CASE.replace('/', '%2F')}"
        deadline = time.monotonic() + 120  # the device starts on a loaded machine: ask until it answers
        while (started := post(page, f"/api/inspection/start{q}", {}))["status"] != 200:
            assert time.monotonic() < deadline, started
            time.sleep(1)
        page.goto(f"{url}/inspections{q}")
        frame = page.wait_for_selector("#live-frame", timeout=T).content_frame()
        assert frame is not None
        frame.wait_for_url("**/live/**", timeout=T)
        live = page.frame_locator("#live-frame")
        frame.wait_for_function("() => window.consoleStats && window.consoleStats.verified >= 3", timeout=T)
        assert not live.locator("#zoom-info").is_visible()  # the full view: no overlay

        waits: list[float] = []

        def click_until(selector: str, cond: str) -> None:
            t0 = time.monotonic()
            live.locator(selector).click()
            frame.wait_for_function(cond, timeout=T)
            waits.append((time.monotonic() - t0) * 1000)

        click_until("#zoom-in", "() => window.consoleStats.zoom === 1.5")
        click_until("#zoom-in", "() => window.consoleStats.zoom === 2")
        live.locator("#zoom-info").wait_for(timeout=T)
        assert live.locator("#zoom-label").inner_text() == "zoom 2.0x"
        rect = live.locator("#zoom-rect").evaluate(
            "e => [e.style.left, e.style.top, e.style.width, e.style.height].map(parseFloat)")
        assert rect == pytest.approx([25, 25, 50, 50], abs=0.7)  # the centred half (to the frame's even pixels)
        # pan: a click near the right edge of the zoomed picture centres the view there
        box = live.locator("#video").bounding_box()
        assert box is not None
        t0 = time.monotonic()
        live.locator("#video").click(position={"x": box["width"] * 0.95, "y": box["height"] * 0.5})
        frame.wait_for_function("() => window.consoleStats.view && window.consoleStats.view.x > 0.45", timeout=T)
        waits.append((time.monotonic() - t0) * 1000)
        left = live.locator("#zoom-rect").evaluate("e => parseFloat(e.style.left)")
        assert left == pytest.approx(rect[0] + 0.95 * rect[2] - rect[2] / 2, abs=1.0)  # the clicked point: new centre
        click_until("#zoom-reset", "() => window.consoleStats.zoom === 1")
        live.locator("#zoom-info").wait_for(state="hidden", timeout=T)
        assert not errors, errors

        # the case lists every change (sealed on the device, delivered by the ingest)
        page.wait_for_function("() => document.querySelectorAll('#zoom-items li.zoom').length >= 4", timeout=120_000)
        rows = page.locator("#zoom-items li.zoom").all_inner_texts()
        text = "\n".join(rows)
        assert "zoom 1.5x" in text and "zoom 2x" in text and "full view — reset by the officer" in text, text
        assert text.count("zoomed by the officer (officer-alice)") == 3, text
        print(f"\nconsole zoom: click -> first verified fragment with the new zoom in the page: "
              f"p50 {statistics.median(waits):.0f} ms, max {max(waits):.0f} ms over {len(waits)} clicks")
        page.close()
