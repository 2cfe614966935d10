"""Attacks on full-resolution document stills: bad resolution values, an oversize still at the ingest, and a
still whose signed record lies about its pixel size.

Before: ``snapshot`` had no resolution at all; the ingest took a still of any size up to the 1 GiB media limit;
and a compromised device could sign a 320x240 JPEG as a "4608x2592 full-resolution" still -- the hash matched,
so ``evidence-agent verify`` passed it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import piexif
import pytest
from PIL import Image
from pydantic import ValidationError

from agent.core.clock import ManualClock
from agent.core.errors import ConfigError
from agent.customs.inspection.service import _resolution
from agent.customs.inspection.web import CheckinBody, SnapshotBody
from agent.customs.keys import OfficerKey
from agent.uplink.command_controller import CommandController, SnapshotArgs
from agent.wire.mqtt import Inbound, MqttLink
from tests.support.fleet import Fleet, agent_cli
from tests.support.hostile import Device, chunk_msgs, now_moment, record_msg, sidecar
from tests.unit.test_commands_controller import REPLY_TOPIC, alice, box, cmd  # noqa: F401  (fixtures)

BAD_RESOLUTIONS: list[Any] = ["8k", "FULL", "full ", "", "stream\x00", 4608, 1.0, True, None, ["full"],
                              {"width": 99999}, "x" * 10_000]


@pytest.fixture
def seen_controller(tmp_path: Path, alice: OfficerKey, identity: Any, manual_clock: ManualClock,  # noqa: F811
                    box: Any) -> Any:  # noqa: F811
    """A controller whose snapshot handler records the validated arguments it was given."""
    from cryptography.hazmat.primitives import serialization

    from agent.wire.commands import CommandVerifier, ReplayCache, TrustStore

    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "a.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text(json.dumps({"officer-alice": ["*"]}))
    replay = ReplayCache(tmp_path / "replay.sqlite")
    seen: list[SnapshotArgs] = []

    def snapshot(_req: Any, args: SnapshotArgs) -> dict[str, Any]:
        seen.append(args)
        return {"seq": 1, "resolution": args.resolution}

    controller = CommandController("test-device", CommandVerifier("test-device", TrustStore(trust), replay,
                                                                  manual_clock),
                                   identity, manual_clock, box.publish, {"snapshot": snapshot})
    yield controller, seen
    replay.close()


def test_bad_resolution_values_are_refused_with_a_reason(seen_controller: Any, alice: OfficerKey,  # noqa: F811
                                                         manual_clock: ManualClock) -> None:
    controller, seen = seen_controller
    for value in BAD_RESOLUTIONS:
        body = controller.handle(cmd(alice, manual_clock, "snapshot", {"resolution": value}), REPLY_TOPIC, b"c")
        assert not body["ok"] and body["error"]["code"] == "bad_args", (value, body)
        assert body["error"]["message"].startswith("resolution:"), body["error"]
        assert len(body["error"]["message"]) <= 300
    assert seen == []  # no refused value reached the camera
    for value in ("full", "stream"):
        body = controller.handle(cmd(alice, manual_clock, "snapshot", {"resolution": value}), REPLY_TOPIC, b"c")
        assert body["ok"] and body["result"]["resolution"] == value
    assert controller.handle(cmd(alice, manual_clock, "snapshot"), REPLY_TOPIC, b"c")["result"]["resolution"] == \
        "stream"  # the default: the video's size


def test_console_and_cli_refuse_bad_resolution_values() -> None:
    for value in BAD_RESOLUTIONS:
        for model, fields in ((SnapshotBody, {}), (CheckinBody, {"step": "identity_document"})):
            with pytest.raises(ValidationError):
                model.model_validate({**fields, "resolution": value})
        if isinstance(value, str):
            with pytest.raises(ConfigError, match="not one of stream, full"):
                _resolution(value)
    assert SnapshotBody.model_validate({"resolution": "full"}).resolution == "full"
    assert _resolution("full") == {"resolution": "full"} and _resolution("stream") == {}


def _send(link: MqttLink, msgs: list[Inbound]) -> None:
    for m in msgs:
        assert link.publish_wait(m.topic, m.payload, user_props=m.user_props, timeout=20).code < 0x80, m.topic


def test_oversize_still_from_a_compromised_device_is_refused_and_nothing_is_lost(fleet: Fleet,
                                                                                tmp_path: Path) -> None:
    """A still over ``max_still_bytes`` is refused (record and chunks) with its reason; the device's other
    evidence, sealed before and after it, arrives whole."""
    out = tmp_path / "out"
    evil = Device(tmp_path / "evil", "cam-evil", keys=fleet.key_dir("cam-evil"))
    link = fleet.link("cam-evil", client_id="cam-evil-stills")
    ingest = fleet.ingest(out, "--limit", "max_still_bytes=100000", idle=8.0, client_id="ingest-stills")
    try:
        restart = sorted(evil.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        small, huge, after = os.urandom(20_000), os.urandom(300_000), os.urandom(30_000)
        items = [evil.still(small), evil.still(huge), evil.still(after)]
        msgs = [record_msg(evil, restart)]
        for item, data in zip(items, (small, huge, after), strict=True):
            msgs += [record_msg(evil, sidecar(item)), *chunk_msgs(evil, item, data, chunk=16_384)]
        _send(link, msgs)
        outcome, _ = ingest.communicate(timeout=180)
    finally:
        ingest.kill()
        link.close(offline=False)
        evil.close()
    rep = json.loads(outcome)["devices"]["cam-evil"]
    assert rep["refusals"].get("too_large", 0) >= 1, rep
    stored = {p.name for p in (out / "cam-evil").rglob("*.still.jpg")}
    assert stored == {items[0].record["media"]["name"], items[2].record["media"]["name"]}
    for item, data in ((items[0], small), (items[2], after)):
        path = next((out / "cam-evil").rglob(item.record["media"]["name"]))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    log = (tmp_path / "ingest.log").read_text(errors="replace")
    assert "max_still_bytes" in log and "Traceback" not in log


def _jpeg(w: int, h: int, exif: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "JPEG", quality=80)
    data = buf.getvalue()
    if exif is None:
        return data
    tags = {"Exif": {piexif.ExifIFD.PixelXDimension: exif[0], piexif.ExifIFD.PixelYDimension: exif[1]}}
    out = io.BytesIO()
    piexif.insert(piexif.dump(tags), data, out)
    return out.getvalue()


def _bomb_header() -> bytes:
    """A JPEG whose frame header claims 65500x65500 pixels (nothing behind it)."""
    data = bytearray(_jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65500).to_bytes(2, "big") + (65500).to_bytes(2, "big")
    return bytes(data)


def test_verify_finds_a_still_whose_record_or_exif_lies_about_its_pixel_size(tmp_path: Path) -> None:
    dev = Device(tmp_path / "liar", "cam-liar")
    sensor = {"width": 4608, "height": 2592}
    full = {"resolution": "full", "sensor": sensor, "region": None}

    def seal(media: bytes, **extra: Any) -> int:
        return dev.sealer.seal("still", now_moment(), media=media, media_type="image/jpeg", ext="jpg",
                               extra=extra).seq

    try:
        honest = seal(_jpeg(640, 360), width=640, height=360)
        upscaled_claim = seal(_jpeg(320, 240), width=4608, height=2592, **full)  # small JPEG sold as full
        exif_lie = seal(_jpeg(320, 240, exif=(4608, 2592)), width=320, height=240)
        not_sensor = seal(_jpeg(1280, 720), width=1280, height=720, **full)  # "full" but not the sensor it names
        garbage = seal(os.urandom(5000), width=640, height=360)
        bomb = seal(_bomb_header(), width=640, height=360)
        no_size = seal(_jpeg(64, 48), resolution="full", sensor=sensor)
        odd = seal(_jpeg(64, 48), width=64, height=48, resolution="8k")
        altered = seal(_jpeg(640, 360), width=640, height=360)
    finally:
        dev.close()
    next((tmp_path / "liar" / "vault").rglob(f"{altered:012d}.still.jpg")).write_bytes(_jpeg(320, 240))
    res = agent_cli("verify", str(tmp_path / "liar" / "vault"), "--json")
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode != 0
    listed = [p for p in json.loads(res.stdout)["problems"] if p["item"].startswith("seq ")]
    problems = {int(p["item"].split()[1]): p["problem"] for p in listed}
    assert honest not in problems
    assert "320x240 pixels but its record claims 4608x2592" in problems[upscaled_claim]
    assert "its EXIF says 4608x2592" in problems[exif_lie]
    assert "not the 4608x2592 sensor it names" in problems[not_sensor]
    assert "not a readable JPEG" in problems[garbage]
    assert "not a readable JPEG" in problems[bomb]
    assert "does not state its pixel size" in problems[no_size]
    assert "'8k' is not one of stream, full" in problems[odd]
    # altered media: named once, by the hash check (its pixels are not what the device sealed anyway)
    assert [p["problem"] for p in listed if p["item"].startswith(f"seq {altered} ")] == [problems[altered]]
    assert "does not match its record" in problems[altered]
