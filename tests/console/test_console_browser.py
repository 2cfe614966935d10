"""The officer console in a real browser: Debian chromium (Playwright) against the console process, a device
process (``evidence-agent run --config``) and Mosquitto with TLS. No mocks between the camera and the screen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.signing.keys import load_identity
from agent.signing.records import sign_record
from agent.wire.mqtt import Inbound, MqttLink
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser
from tests.support.helpers import wait_for

SITE = "site-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleStack, str]]:
    need_browser()
    st = build_console_stack(tmp_path_factory.mktemp("console"))
    try:
        st.start_device(st.device_config("cam-1", SITE))
        for other in ("cam-2", "cam-3"):  # their CAs go into the console's device CA file before it starts
            st.device_config(other, SITE)
        _proc, url = st.start_console("officer-alice")
        yield st, url
    finally:
        st.close()


@pytest.fixture(scope="module")
def browser(stack: tuple[ConsoleStack, str]) -> Iterator[Any]:
    with chromium() as b:
        yield b


def stats(page: Any) -> dict[str, Any]:
    s: dict[str, Any] = page.evaluate(
        "() => ({...window.consoleStats, latencies: window.consoleStats.latencies.length,"
        " currentTime: document.getElementById('video').currentTime,"
        " decoded: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames})")
    return s


def open_live(browser: Any, url: str, device: str = "cam-1") -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/live/{SITE}/{device}")
    page.wait_for_function("() => window.consoleStats && window.consoleStats.verified >= 5", timeout=30_000)
    return page


class Attacker:
    """Someone on the broker's path: reads the live topic (as an officer may) and publishes as the device."""

    def __init__(self, st: ConsoleStack, topic: str, device: str = "cam-1") -> None:
        self.captured: list[bytes] = []
        self.got = threading.Event()
        self.reader = MqttLink(st.broker.mqtt_config("officer-bob", client_id="eavesdropper"), name="reader")
        self.writer = MqttLink(st.broker.mqtt_config(device, client_id=f"{device}-forger"), name="forger")
        for link in (self.reader, self.writer):
            link.start()
            assert link.wait_connected(10), link.last_error
        self.reader.subscribe_wait(topic, self._on, qos=0)

    def _on(self, msg: Inbound) -> None:
        if len(self.captured) < 50 and len(msg.payload) > 2000:  # media fragments, not the end message
            self.captured.append(bytes(msg.payload))
            self.got.set()

    def publish(self, topic: str, payload: bytes) -> None:
        self.writer.publish_wait(topic, payload, qos=1)

    def close(self) -> None:
        self.reader.close(offline=False)
        self.writer.close(offline=False)


def test_live_page_plays_verified_hd_video(stack: tuple[ConsoleStack, str], browser: Any) -> None:
    _st, url = stack
    page = open_live(browser, url)
    first = stats(page)
    page.wait_for_function("() => document.getElementById('video').currentTime > 2"
                           " && window.consoleStats.presented >= 20", timeout=60_000)
    later = stats(page)
    assert later["currentTime"] > first["currentTime"]  # it plays
    assert later["decoded"] >= 20 and later["presented"] >= 20  # frames decoded and presented
    assert later["latencies"] > 0  # presented frames were matched to their signed capture times
    assert later["refused"] == 0
    assert page.evaluate("() => [document.getElementById('video').videoWidth, "
                         "document.getElementById('video').videoHeight]") == [1280, 720]
    badge = page.inner_text("#badge")
    assert "VERIFIED LIVE" in badge
    for word in ("cam-1's certificate (issued by", "chains to the configured device CA",
                 "ECDSA P-256 / SHA-256 signature valid", "(ours)", "in order (after", "bytes match the signed SHA-256",
                 "s ago (live: at most", "Captured", "GPS (device-signed)"):
        assert word in badge, badge
    page.close()


def test_tampered_and_replayed_fragments_are_refused_and_shown(stack: tuple[ConsoleStack, str],
                                                               browser: Any) -> None:
    st, url = stack
    page = open_live(browser, url)
    topic = f"evidence/{SITE}/cam-1/live/{stats(page)['session']}"
    attacker = Attacker(st, topic)
    try:
        assert attacker.got.wait(20)
        genuine = attacker.captured[-1]
        attacker.publish(topic, genuine)  # replayed: a genuine, signed fragment a second time
        page.wait_for_function("() => window.consoleStats.refused >= 1", timeout=15_000)
        assert "replayed" in stats(page)["lastReason"]
        assert "FRAGMENT REFUSED" in page.inner_text("#badge") and "replayed" in page.inner_text("#badge")
        tampered = bytearray(attacker.captured[-1])
        tampered[-100] ^= 0xFF  # one byte of the video changed
        attacker.publish(topic, bytes(tampered))
        page.wait_for_function("() => window.consoleStats.refused >= 2", timeout=15_000)
        assert "do not match the signed hash" in stats(page)["lastReason"]
        assert "do not match the signed hash" in page.inner_text("#events")
        page.screenshot(path=str(st.root / "live-refused.png"))
        # the genuine stream goes on: verified fragments keep arriving and the video keeps playing
        before = stats(page)
        page.wait_for_function(f"() => document.getElementById('video').currentTime > {before['currentTime'] + 2}",
                               timeout=30_000)
        assert stats(page)["verified"] > before["verified"]
    finally:
        attacker.close()
        page.close()


def test_two_officers_watch_and_closing_a_page_ends_its_stream(stack: tuple[ConsoleStack, str],
                                                               browser: Any) -> None:
    st, url = stack
    _bob, bob_url = st.start_console("officer-bob")
    alice = open_live(browser, url)
    bob = open_live(browser, bob_url)
    for page in (alice, bob):
        page.wait_for_function("() => document.getElementById('video').currentTime > 1", timeout=30_000)
    log = st.root / "cam-1" / "agent.log"
    ended = log.read_text().count("ended (stop)") + log.read_text().count("ended (keepalive)")
    bob.close()  # the page goes away: its session ends (stop on close, or the keepalive dead-man)
    wait_for(lambda: log.read_text().count("ended (stop)") + log.read_text().count("ended (keepalive)") > ended,
             timeout=30)
    before = stats(alice)["verified"]
    time.sleep(1.5)
    assert stats(alice)["verified"] > before  # the other officer still watches
    alice.close()


def test_snapshot_and_mark_from_the_live_page(stack: tuple[ConsoleStack, str], browser: Any) -> None:
    _st, url = stack
    page = open_live(browser, url)
    page.click("#snapshot")
    page.wait_for_function("() => document.getElementById('actions').innerText.includes('snapshot:')", timeout=30_000)
    assert "sealed as record" in page.inner_text("#actions")
    page.fill("#note", "gate 3: seal intact")
    page.click("#mark")
    page.wait_for_function("() => document.getElementById('actions').innerText.includes('mark:')", timeout=30_000)
    assert page.inner_text("#actions").count("sealed as record") == 2
    page.close()


def test_fleet_page_updates_when_a_device_goes_offline(stack: tuple[ConsoleStack, str], browser: Any,
                                                       tmp_path: Path) -> None:
    st, url = stack
    dev = st.start_device(st.device_config("cam-2", SITE, width=320, height=180, fps=5, video=False))
    page = browser.new_page(viewport={"width": 1400, "height": 700})
    page.goto(f"{url}/fleet")
    row = "tr[data-device='cam-2']"
    page.wait_for_selector(f"{row}.online", timeout=30_000)
    assert "31.2" in page.inner_text(row)  # the simulated GPS fix from its status
    assert "cam-1" in page.inner_text("#fleet")
    dev.stop(sig_kill=True)  # a crash: the broker publishes the device's last will
    page.wait_for_selector(f"{row}.offline", timeout=30_000)
    assert "offline" in page.inner_text(row)
    page.close()


def test_device_alert_is_shown_on_the_video_and_a_forged_one_is_not(stack: tuple[ConsoleStack, str],
                                                                     browser: Any) -> None:
    """The alert is signed with the device's own key (as its analytics would seal it) and published on its
    alert topic with its TLS identity; a copy with one word changed is refused by the console."""
    st, url = stack
    page = open_live(browser, url)
    identity = load_identity(st.root / "cam-1" / "keys")
    record = {"seq": 10_000, "kind": "event", "key_id": identity.key_id,
              "captured": {"wall": "2026-12-02T10:00:01Z"}, "extra": {"type": "covered", "phase": "onset"}}
    good = sign_record(record, identity).to_sidecar()
    link = MqttLink(st.broker.mqtt_config("cam-1", client_id="cam-1-alerts"), name="alerts")
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
        link.publish_wait(f"evidence/{SITE}/cam-1/alert", good.replace(b"covered", b"frozenx"), qos=1)
        link.publish_wait(f"evidence/{SITE}/cam-1/alert", good, qos=1)
        page.wait_for_function("() => document.getElementById('alerts').innerText.includes('covered')",
                               timeout=15_000)
        assert "frozenx" not in page.inner_text("#alerts") and "frozenx" not in page.inner_text("#events")
        page.screenshot(path=str(st.root / "live-alert.png"))
    finally:
        link.close(offline=False)
        page.close()


def test_a_device_without_h264_falls_back_to_verified_jpeg(stack: tuple[ConsoleStack, str], browser: Any) -> None:
    st, url = stack
    dev = st.start_device(st.device_config("cam-3", SITE, width=640, height=360, fps=10, video=False,
                                           live={"h264": False}))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        wait_for(lambda: "connected" in dev.text(), timeout=30)
        page.goto(f"{url}/live/{SITE}/cam-3")
        try:
            page.wait_for_function("() => window.consoleStats && window.consoleStats.presented >= 5", timeout=30_000)
        except Exception as exc:
            raise AssertionError(f"{page.inner_text('#badge')}\n{dev.text()[-3000:]}") from exc
        assert page.evaluate("() => { const i = document.querySelector('.stage img');"
                             " return i ? [i.naturalWidth, i.naturalHeight] : null; }") == [640, 360]  # aspect kept
        assert "VERIFIED LIVE" in page.inner_text("#badge")
        assert page.evaluate("() => window.consoleStats.refused") == 0
        page.close()
    finally:
        dev.stop()


def test_a_foreign_page_cannot_use_the_console(stack: tuple[ConsoleStack, str]) -> None:
    """The console acts with the officer's credentials: another site's page must not reach it."""
    import urllib.error
    import urllib.request

    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    _st, url = stack
    for headers in ({"Origin": "https://evil.example"}, {"Host": "evil.example"}):
        req = urllib.request.Request(f"{url}/api/devices/{SITE}/cam-1/snapshot", data=b"", method="POST",
                                     headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403
    ws = url.replace("http://", "ws://") + f"/ws/live/{SITE}/cam-1"
    with pytest.raises((InvalidStatus, InvalidHandshake)), connect(ws, origin="https://evil.example",  # type: ignore[arg-type]
                                                                  open_timeout=10):
        pass
    with urllib.request.urlopen(f"{url}/api/devices", timeout=10) as resp:  # no Origin: the officer's own tools
        assert resp.status == 200
