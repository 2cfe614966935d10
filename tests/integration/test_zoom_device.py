"""``view.zoom`` against a real ``evidence-agent run --config`` on Mosquitto with TLS: the live frames change.

An officer (in-process OfficerClient, and once the ``evidence-officer cmd`` CLI) watches signed JPEG live frames
while zooming, panning and resetting. For each command the test finds the first verified frame showing the new
region and records two latencies, printed at the end (no timing asserts: this VM is shared and loaded):
the frame's capture time minus the zoom record's seal time, and the frame's arrival at the officer minus the
moment the command was sent. Afterwards the device's vault holds one ``view_zoom`` event per change, the reset
at the end of the live view, and no scene_change (nor replayed/obstructed) raised by the zooms.
"""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.core.errors import AgentError
from agent.customs.cmd_cmd import CommandRefused, OfficerClient
from agent.customs.inspection.evidence import load_items
from agent.customs.keys import load_officer
from agent.signing.trust import load_anchors
from agent.wire.live_frames import session_id_for, verify_message
from agent.wire.mqtt import Inbound, MqttLink
from agent.wire.topics import DeviceTopics
from tests.support.console_stack import ENV, ConsoleStack, Proc, build_console_stack
from tests.support.helpers import REPO

SITE, DEVICE = "site-z", "cam-zoom"
STEPS: list[dict[str, Any]] = [
    {"cx": 0.5, "cy": 0.5, "factor": 2.0}, {"cx": 0.3, "cy": 0.35, "factor": 3.0}, {"reset": True},
    {"cx": 0.7, "cy": 0.6, "factor": 4.0}, {"cx": 0.5, "cy": 0.5, "factor": 8.0},
    {"cx": 0.55, "cy": 0.45, "factor": 1.5}, {"reset": True},
    {"cx": 0.25, "cy": 0.75, "factor": 2.0}, {"cx": 0.6, "cy": 0.4, "factor": 3.0},
]
CLI_STEP = {"cx": 0.4, "cy": 0.6, "factor": 2.5}


@dataclass
class Frames:
    """Verified live frames: (arrival wall ns, signed header)."""

    seen: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    early: list[bytes] = field(default_factory=list)
    check: Callable[[bytes], dict[str, Any]] | None = None
    refused: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_message(self, msg: Inbound) -> None:
        now = time.time_ns()
        with self.cond:
            if self.check is None:
                self.early.append(bytes(msg.payload))
                return
            self._take(bytes(msg.payload), now)

    def _take(self, payload: bytes, now: int) -> None:
        assert self.check is not None
        try:
            self.seen.append((now, self.check(payload)))
        except AgentError:
            self.refused += 1
        self.cond.notify_all()

    def start(self, check: Callable[[bytes], dict[str, Any]]) -> None:
        with self.cond:
            self.check = check
            for p in self.early:
                self._take(p, time.time_ns())
            self.early.clear()

    def first(self, cond: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hit = next(((t, h) for t, h in self.seen if cond(h)), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                assert left > 0, f"no live frame matched in {timeout:g} s ({len(self.seen)} frames seen)"
                self.cond.wait(left)


def shows(header: dict[str, Any], args: dict[str, Any]) -> bool:
    view = header.get("view")
    if args.get("reset"):
        return view is None
    return view is not None and abs(view["factor"] - args["factor"]) < 0.02 * args["factor"] and abs(
        view["x"] + view["w"] / 2 - args["cx"]) < 0.01 and abs(view["y"] + view["h"] / 2 - args["cy"]) < 0.01


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleStack, Proc, Path]]:
    from tests.support.command_stack import need_mosquitto

    need_mosquitto()
    s = build_console_stack(tmp_path_factory.mktemp("zoom"))
    config = s.device_config(DEVICE, SITE, width=640, height=360, fps=10, overlay=False)
    proc = s.start_device(config)
    try:
        yield s, proc, config.parent
    finally:
        s.close()


def officer(s: ConsoleStack, proc: Proc) -> OfficerClient:
    link = MqttLink(s.broker.mqtt_config("officer-alice", client_id=f"alice-{secrets.token_hex(3)}",  # type: ignore[union-attr]
                                         session_expiry_s=0), name="officer")
    link.start()
    assert link.wait_connected(30), link.last_error
    client = OfficerClient(link, load_officer(s.officer_dirs["officer-alice"]), device_cas=load_anchors([s.device_ca]))
    deadline = time.monotonic() + 120
    while True:  # the device process starts on a loaded machine: ask until it answers
        assert proc.proc.poll() is None, proc.text()
        try:
            client.request(SITE, DEVICE, "status", timeout=5)
            return client
        except AgentError:
            assert time.monotonic() < deadline, proc.text()[-3000:]


def cli_zoom(s: ConsoleStack, args: dict[str, Any]) -> dict[str, Any]:
    tls = s.broker.pki.client("officer-alice")  # type: ignore[union-attr]
    res = subprocess.run(
        [sys.executable, "-m", "agent.customs.cli", "cmd", DEVICE, "view.zoom", "--broker", s.broker.url, "--site",
         SITE, "--keys", str(s.officer_dirs["officer-alice"]), "--cafile", str(tls.ca), "--cert", str(tls.cert),
         "--key", str(tls.key), "--device-ca", str(s.device_ca), "--args", json.dumps(args), "--json",
         "--timeout", "30"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_zoom_commands_change_the_live_frames_and_are_sealed(stack: tuple[ConsoleStack, Proc, Path]) -> None:
    s, proc, base = stack
    client = officer(s, proc)
    nonce = secrets.token_hex(16)
    session = session_id_for(nonce)
    frames = Frames()
    topic = DeviceTopics(SITE, DEVICE).live(session)
    client.link.subscribe_wait(topic, frames.on_message, 0)
    with pytest.raises(CommandRefused, match="conflict: no live view"):  # a zoom is for the live view
        client.request(SITE, DEVICE, "view.zoom", STEPS[0], timeout=15)
    _reply, leaf = client.request_signed(SITE, DEVICE, "live.start", {"codec": "jpeg", "width": 320, "height": 180,
                                                                      "fps": 10, "seconds": 600}, nonce=nonce,
                                        timeout=15)
    key = leaf.public_key()
    frames.start(lambda p: verify_message(p, key, device=DEVICE, session=session, nonce=nonce).header)  # type: ignore[arg-type]
    frames.first(lambda h: "capture_wall_us" in h)
    seal_to_frame: list[float] = []
    send_to_screen: list[float] = []
    for args in [*STEPS, CLI_STEP]:
        client.send(SITE, DEVICE, "live.keepalive", {"session": session})
        sent_ns = time.time_ns()
        if args is CLI_STEP:
            result = cli_zoom(s, args)["result"]
        else:
            result = client.request(SITE, DEVICE, "view.zoom", args, timeout=15)["result"]
        assert result["changed"] and isinstance(result["seq"], int)
        arrived, h = frames.first(lambda h, a=args, t=sent_ns: h.get("capture_wall_us", 0) * 1000 >= t and shows(h, a))
        seal_to_frame.append((h["capture_wall_us"] - result["captured_wall_us"]) / 1000)
        if args is not CLI_STEP:  # the CLI's own start-up is not the device's latency
            send_to_screen.append((arrived - sent_ns) / 1e6)
    hold_until = time.monotonic() + 6  # longer than a moved camera takes to be raised (scene_settle 2 s + onset)
    while time.monotonic() < hold_until:
        client.send(SITE, DEVICE, "live.keepalive", {"session": session})
        now = time.time_ns()
        frames.first(lambda h, t=now: h.get("capture_wall_us", 0) * 1000 >= t)
    assert client.request(SITE, DEVICE, "live.stop", {"session": session}, timeout=15)["ok"]
    assert frames.refused == 0
    print(f"\nzoom latency over {len(seal_to_frame)} commands (seal -> first zoomed frame captured): "
          f"p50 {statistics.median(seal_to_frame):.0f} ms, max {max(seal_to_frame):.0f} ms; "
          f"command sent -> first zoomed frame verified at the officer ({len(send_to_screen)} in-process commands): "
          f"p50 {statistics.median(send_to_screen):.0f} ms, max {max(send_to_screen):.0f} ms")
    deadline = time.monotonic() + 60  # the live_ended reset is sealed as the session ends
    while True:
        events = [it.extra for it in load_items(base / "vault", 0) if it.kind == "event"]
        zooms = [e for e in events if e.get("type") == "view_zoom"]
        if (zooms and zooms[-1].get("reason") == "live_ended") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    client.link.close()
    assert [z["reason"] for z in zooms] == ["officer"] * 2 + ["reset"] + ["officer"] * 3 + ["reset"] + \
        ["officer"] * 3 + ["live_ended"]
    first = zooms[0]
    assert first["view"]["factor"] == 2.0 and first["pixels"]["space"] == "frame"
    assert first["pixels"]["w"] == 320 and first["pixels"]["full_view"] == [0, 0, 640, 360]
    assert first["officer"] == "officer-alice" and first["command"]["body"]["command"] == "view.zoom"
    raised = [e["type"] for e in events if e.get("type") in ("scene_change", "replayed", "obstructed")]
    assert raised == [], events
