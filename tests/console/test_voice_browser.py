"""Two-way voice, end to end: `evidence-agent run --config` with the file microphone (a test tone) and the file
speaker, Mosquitto with TLS, `evidence-officer ingest`, the console and Debian's chromium (Playwright) with a fake
microphone playing another tone. The site's tone is heard in the page (decoded samples and an AnalyserNode), the
officer's arrives in the device's speaker file, and both directions are sealed, ingested and listed in the case
(console API, the case page, `evidence-officer inspection show --evidence`)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import wave
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest

from tests.support.console_stack import CHROMIUM, CHROMIUM_ARGS, ConsoleStack, build_console_stack, need_browser
from tests.support.helpers import REPO, wait_for
from tests.support.voice import peak_hz, tone, write_wav

CASE = "C-2026/0123"
DEVICE, SITE = "cam-voice", "site-v"
SITE_TONE_HZ = 880.0
OFFICER_TONE_HZ = 440.0
T = 60_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("voice")
    site_wav = write_wav(root / "site-tone.wav", tone(SITE_TONE_HZ, 3.0))
    officer_wav = write_wav(root / "officer-tone.wav", tone(OFFICER_TONE_HZ, 3.0))
    st: ConsoleStack = build_console_stack(root)
    try:
        received = st.start_ingest()
        cfg = st.device_config(DEVICE, SITE, width=320, height=240, fps=5, extra_toml=f"""
[audio]
enabled = true
source = "file"
source_file = "{site_wav}"
sink = "file"
sink_file = "{root / 'speaker.wav'}"
segment_seconds = 4
""")
        st.start_device(cfg)
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{root / "console-data"}"\nevidence = "{received}"\n'))
        yield {"st": st, "url": url, "root": root, "received": received, "officer_wav": officer_wav}
    finally:
        st.close()


def api(page: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return page.evaluate("""async ([m, p, b]) => {
        const r = await fetch(p, {method: m, headers: {"content-type": "application/json"},
                                   body: b === null ? undefined : JSON.stringify(b)});
        return {status: r.status, body: await r.json().catch(() => null)};
    }""", [method, path, body])


def decode_ogg(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_site_voice_is_heard_in_the_page_and_sealed_in_the_case(stack: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    url, root, received = stack["url"], stack["root"], stack["received"]
    q = "?case=" + urllib.parse.quote(CASE)
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={stack['officer_wav']}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page()
            page.goto(f"{url}/inspections")
            r = api(page, "POST", "/api/inspections", {
                "case": CASE, "enterprise": "Echo Farms", "device": DEVICE, "site": SITE,
                "polygon": "31.0,121.0;31.0,121.1;31.1,121.1", "officers": ["officer-alice"]})
            assert r["status"] == 200, r
            deadline = time.monotonic() + 90  # the device answers its self-test once it is up
            while api(page, "POST", f"/api/inspection/ready{q}", {})["status"] != 200:
                assert time.monotonic() < deadline, "the device never answered its self-test"
                page.wait_for_timeout(2000)
            assert api(page, "POST", f"/api/inspection/start{q}", {})["status"] == 200

            live = browser.new_page()
            live.goto(f"{url}/live/{SITE}/{DEVICE}")
            live.click("#voice-start")
            live.wait_for_function("() => window.voiceStats.decoded >= 150", timeout=T)  # 3 s of 20 ms frames
            heard = np.array(live.evaluate(
                "() => Array.from(window.voiceStats.samples.reduce((a, b) => { const c = new Float32Array("
                "a.length + b.length); c.set(a); c.set(b, a.length); return c; }, new Float32Array(0)))"))
            assert heard.size >= 24_000 and abs(peak_hz(heard) - SITE_TONE_HZ) < 10
            analyser_hz = live.evaluate("() => window.voiceStats.analyserPeakHz")
            assert analyser_hz is not None and abs(analyser_hz - SITE_TONE_HZ) < 15
            assert live.evaluate("() => window.voiceStats.refused") == 0
            assert "checked by the console" in live.inner_text("#voice-status")
            live.click("#voice-mute")  # mute silences the page only; unmute restores it
            assert live.evaluate("() => window.voiceStats.muted") is True
            live.click("#voice-mute")
            assert live.evaluate("() => window.voiceStats.muted") is False

            # the officer holds the push-to-talk button: the fake microphone plays the officer's tone
            live.wait_for_selector("#voice-talk-status:has-text('Microphone ready')", timeout=T)
            live.hover("#voice-talk")
            live.mouse.down()
            live.wait_for_function("() => window.voiceStats.talkPackets >= 125", timeout=T)  # 2.5 s
            live.mouse.up()
            assert live.evaluate("() => window.voiceStats.talkRefused") == 0
            speaker = root / "speaker.wav"

            def played() -> int:
                with wave.open(str(speaker)) as w:
                    return w.getnframes()

            wait_for(lambda: speaker.exists() and played() >= 96_000, timeout=60)
            with wave.open(str(speaker)) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            assert abs(peak_hz(pcm[9600:]) - OFFICER_TONE_HZ) < 10
            live.screenshot(path=str(root / "voice-live.png"))
            live.click("#voice-stop")
            live.wait_for_function("() => window.voiceStats.ended === 'stop'", timeout=T)
            sealed = live.evaluate("() => window.voiceStats.sealed")
            assert len(sealed) >= 1
            live.close()

            assert api(page, "POST", f"/api/inspection/end{q}", {"outcome": "completed"})["status"] == 200
            page.goto(f"{url}/inspections{q}")

            def listed() -> list[dict[str, Any]]:
                d = api(page, "GET", f"/api/inspection{q}")["body"]
                return [a for a in d.get("audio", []) if a["received"]]

            wait_for(lambda: len(listed()) >= len(sealed), timeout=120)
            audio = listed()
            assert {a["seq"] for a in audio} >= {s["seq"] for s in sealed}
            assert {a["direction"] for a in audio} == {"site", "officer"}
            assert all(a["officer"] == "officer-alice" for a in audio)
            page.wait_for_selector("#audio-items li.audio", timeout=T)
            assert "the site's microphone" in page.inner_text("#audio-items")
            assert "the officer's voice on the site speaker" in page.inner_text("#audio-items")
        finally:
            browser.close()

    show = subprocess.run([sys.executable, "-m", "agent.customs.cli", "inspection", "--data",
                           str(root / "console-data"), "show", CASE, "--evidence", str(received)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert show.returncode == 0, show.stderr
    assert show.stdout.count("AUDIO seq") >= len(sealed), show.stdout
    heard = {}
    for rec in received.rglob("*.audio.rec"):
        record = json.loads(rec.read_text().splitlines()[0])
        ogg = rec.with_name(rec.name.removesuffix(".rec") + ".ogg")
        if ogg.exists() and record["extra"]["duration_ms"] >= 1000:
            heard.setdefault(record["extra"]["direction"], []).append(peak_hz(decode_ogg(ogg.read_bytes())[4800:]))
    assert any(abs(f - SITE_TONE_HZ) < 10 for f in heard["site"]), heard
    assert any(abs(f - OFFICER_TONE_HZ) < 10 for f in heard["officer"]), heard
