"""Live view over a real Mosquitto: verified frames, two officers at once, keepalive loss, the CLI."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.customs import live_cmd
from agent.customs.live_cmd import FrameSink, LiveStats, run_live
from agent.uplink.settings_commands import LiveConfig
from agent.wire.live_frames import verify_message
from tests.support.command_stack import DEVICE, SITE, FrameCounter, Stack, build_stack

SMALL = {"width": 160, "height": 120, "fps": 10, "quality": 60, "seconds": 30}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("live"), live=LiveConfig(keepalive_timeout_s=1.5))
    yield s
    s.close()


def test_two_officers_watch_at_once_while_recording_continues(stack: Stack, tmp_path: Path) -> None:
    recorder = FrameCounter(stack.hub)
    results: dict[str, LiveStats] = {}
    errors: list[BaseException] = []

    def watch(name: str) -> None:
        try:
            client = stack.officer(name)
            results[name] = run_live(client, SITE, DEVICE, seconds=2.0, params=SMALL,
                                     sink=FrameSink(tmp_path / name, mjpeg=name.endswith("bob")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=watch, args=(n,), name=f"watch-{n}") for n in ("officer-alice", "officer-bob")]
    sealed_before = len(stack.service.live.sealed)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    recorder.close()
    assert not errors, errors
    for name, stats in results.items():
        assert stats.frames >= 8, (name, stats.summary())
        assert stats.rejected == 0 and stats.end_reason == "stop", stats.summary()
    assert results["officer-alice"].session != results["officer-bob"].session
    assert len(list((tmp_path / "officer-alice" / "frames").glob("*.jpg"))) == results["officer-alice"].frames
    assert (tmp_path / "officer-bob" / "live.mjpeg").stat().st_size > 0
    assert recorder.count >= 20  # the hub kept feeding the recorder at 20 fps during both sessions
    new = stack.service.live.sealed[sealed_before:]
    assert sorted(i.record["extra"]["officer"] for i in new) == ["officer-alice", "officer-bob"]
    assert all(i.kind == "live" and i.record["extra"]["stop_reason"] == "stop" for i in new)
    assert {s.sealed["seq"] for s in results.values() if s.sealed} == {i.seq for i in new}


def test_live_stops_when_keepalives_stop(stack: Stack) -> None:
    alice = stack.officer("officer-alice")
    t0 = time.monotonic()
    stats = run_live(alice, SITE, DEVICE, seconds=20.0, params=SMALL, keepalive=False)
    elapsed = time.monotonic() - t0
    assert stats.end_reason == "keepalive", stats.summary()
    assert stats.frames > 0 and elapsed < 10
    item = stack.service.live.sealed[-1]
    assert item.record["extra"]["stop_reason"] == "keepalive"
    assert item.record["extra"]["frames"] >= stats.frames


def test_session_of_another_officer_cannot_be_stopped(stack: Stack) -> None:
    alice, bob = stack.officer("officer-alice"), stack.officer("officer-bob")
    reply = alice.request(SITE, DEVICE, "live.start", SMALL)
    session = reply["result"]["session"]
    from agent.core.errors import CommandError

    with pytest.raises(CommandError, match="unauthorized"):
        bob.request(SITE, DEVICE, "live.stop", {"session": session})
    assert alice.request(SITE, DEVICE, "live.stop", {"session": session})["ok"]


def test_live_cli(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = stack.broker.pki.client("officer-alice")  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="evidence-officer")
    live_cmd.register(parser.add_subparsers(dest="area", required=True))
    args = parser.parse_args([
        "live", DEVICE, "--broker", stack.broker.url, "--site", SITE,
        "--keys", str(stack.root / "officers" / "officer-alice"),
        "--cafile", str(cert.ca), "--cert", str(cert.cert), "--key", str(cert.key),
        "--device-ca", str(stack.device_ca), "--seconds", "1.5", "--width", "160", "--height", "120",
        "--out", str(tmp_path / "out"), "--json"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] > 0 and summary["rejected"] == 0 and summary["latency_p50_ms"] is not None
    lines = [json.loads(x) for x in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == summary["frames"] and lines[0]["header"]["device"] == DEVICE
    # what the officer saw is what the device sealed
    item = stack.service.live.sealed[-1]
    assert item.media_path is not None and summary["sealed"]["seq"] == item.seq
    sealed = {json.loads(x)["message_sha256"] for x in Path(item.media_path).read_text().splitlines()}
    assert {x["message_sha256"] for x in lines} <= sealed
    # and a saved frame can be re-verified offline from its line and its JPEG
    first = lines[0]
    jpeg = (tmp_path / "out" / "frames" / f"{first['header']['seq']:06d}.jpg").read_bytes()
    message = base64.b64decode(first["message_b64"]) + jpeg
    assert hashlib.sha256(message).hexdigest() == first["message_sha256"]
    key = stack.identity.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    verify_message(message, key, device=DEVICE, session=first["header"]["session"], nonce=first["header"]["nonce"])
    assert json.loads((tmp_path / "out" / "start-reply.json").read_text())["ok"]
