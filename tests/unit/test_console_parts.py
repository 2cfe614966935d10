"""Console parts without a browser: the fragment checks, the fleet table's trust in what devices send, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import ConfigError, VerificationError
from agent.customs.console.config import load_console_config
from agent.customs.console.fleet_state import FleetTracker
from agent.customs.console.live import FragmentChecker
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from agent.signing.records import sign_record
from agent.wire.live_frames import FRAGMENT_TYP, pack_message
from agent.wire.mqtt import Inbound
from tests.support.helpers import REPO

DEVICE, SESSION, NONCE = "test-device", "s" * 24, "n" * 32


def fragment(identity: DeviceIdentity, seq: int, *, kind: str = "media", key: bool = True,
             age_s: float = 0.2, **over: Any) -> bytes:
    wall = time.time_ns() // 1000 - int(age_s * 1e6)
    h: dict[str, Any] = {"typ": FRAGMENT_TYP, "device": DEVICE, "session": SESSION, "nonce": NONCE, "seq": seq,
                         "kind": kind}
    if kind == "media":
        h.update({"keyframe": key, "frames": [[seq * 1000, wall - 100], [seq * 1000 + 66, wall]],
                  "capture_start_wall_us": wall - 100, "capture_end_wall_us": wall})
    h.update(over)
    data = f"fragment {seq}".encode()
    import hashlib

    h["data_sha256"] = hashlib.sha256(data).hexdigest()
    return pack_message(h, identity, data)


def checker(identity: DeviceIdentity) -> FragmentChecker:
    key = identity.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return FragmentChecker(DEVICE, SESSION, NONCE, key, max_age_s=5, max_skew_s=2)


def test_fragment_checks_order_freshness_and_keyframes(identity: DeviceIdentity) -> None:
    c = checker(identity)
    now = time.time_ns() // 1000
    assert c.check(fragment(identity, 0, kind="init"), now)[0] == "pass"
    assert c.check(fragment(identity, 1, key=False), now)[0] == "wait"  # no keyframe yet: not decodable
    assert c.check(fragment(identity, 2), now)[0] == "pass"
    with pytest.raises(VerificationError, match="replayed"):
        c.check(fragment(identity, 2), now)
    with pytest.raises(VerificationError, match="not live"):
        c.check(fragment(identity, 3, age_s=60), now)  # recorded earlier, signed properly: still not live
    with pytest.raises(VerificationError, match="future"):
        c.check(fragment(identity, 4, age_s=-30), now)
    c.refuse()
    assert c.check(fragment(identity, 5, key=False), now)[0] == "wait"  # after a refusal: the next keyframe
    assert c.check(fragment(identity, 6), now)[0] == "pass"
    with pytest.raises(VerificationError, match="do not match the signed hash"):
        bad = bytearray(fragment(identity, 7))
        bad[-1] ^= 1
        c.check(bytes(bad), now)
    with pytest.raises(VerificationError, match="time range"):
        c.check(fragment(identity, 8, capture_start_wall_us=now + 10), now)
    other = load_identity(_other_keys(identity))
    with pytest.raises(VerificationError, match="signature"):
        c.check(fragment(other, 9), now)  # the right names, another device's key


def _other_keys(identity: DeviceIdentity) -> Path:
    import tempfile

    d = Path(tempfile.mkdtemp()) / "k"
    init_identity(d, DEVICE, "Impostor Ltd")
    return d


def msg(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic=topic, payload=payload, qos=1, retain=True, user_props=(), response_topic=None,
                   correlation_data=None, content_type=None)


def test_fleet_shows_what_devices_report_and_only_verified_alerts(identity: DeviceIdentity) -> None:
    fleet = FleetTracker(device_cas=[identity.chain[-1]])
    events: list[dict[str, Any]] = []
    fleet.add_listener(events.append)
    base = f"evidence/site-1/{DEVICE}"
    fleet.handle(msg(f"{base}/availability", b"online"))
    status = {"time": "2026-12-02T10:00:00Z", "gps": {"fix": "3d", "lat": 31.2, "lon": 121.4, "hdop": 0.9},
              "clock": {"source": "gps", "synced": True, "est_error_s": 0.001}, "camera": {"source": "synthetic"},
              "junk": "x" * 1000}
    fleet.handle(msg(f"{base}/status", json.dumps(status).encode()))
    d = fleet.device("site-1", DEVICE)
    assert d is not None and d["online"] and d["gps"]["fix"] and d["clock"]["synced"] and "junk" not in d
    fleet.handle(msg(f"{base}/status", b"{" + b" " * 70_000 + b"}"))  # oversized: refused, state kept
    assert fleet.device("site-1", DEVICE)["gps"]["lat"] == 31.2  # type: ignore[index]
    record = {"seq": 7, "kind": "event", "key_id": identity.key_id, "captured": {"wall": "2026-12-02T10:00:01Z"},
              "extra": {"type": "covered", "phase": "onset"}}
    good = sign_record(record, identity).to_sidecar()
    fleet.handle(msg(f"{base}/alert", good))
    forged = good.replace(b"covered", b"movedxx")
    fleet.handle(msg(f"{base}/alert", forged))
    fleet.handle(msg("evidence/site-1/another-device/alert", good))  # signed by a different device
    alerts = fleet.device("site-1", DEVICE)["alerts"]  # type: ignore[index]
    assert [a["type"] for a in alerts] == ["covered"] and alerts[0]["verified"]
    assert fleet.device("site-1", "another-device") is None
    fleet.handle(msg(f"{base}/availability", b"offline"))
    assert fleet.device("site-1", DEVICE)["online"] is False  # type: ignore[index]
    assert events[-1]["device"]["online"] is False


def test_console_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "console.toml"
    cfg.write_text('[broker]\nurl = "mqtt://127.0.0.1:1883"\n[officer]\nkeys = "keys"\n[listen]\nport = "x"\n')
    with pytest.raises(ConfigError, match=r"console.toml: listen.port"):
        load_console_config(cfg)
    cfg.write_text('[broker]\nurl = "mqtt://127.0.0.1:1883"\n[officer]\nkeys = "keys"\n')
    assert load_console_config(cfg).officer.keys == tmp_path / "keys"  # relative to the file
    with pytest.raises(ConfigError, match="cannot read"):
        load_console_config(tmp_path / "missing.toml")
    res = subprocess.run([sys.executable, "-m", "agent.customs.cli", "console", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "keys" in res.stderr  # no officer key there: said in one line


def test_only_the_consoles_own_pages_may_use_it() -> None:
    from agent.customs.console.origin import SameOriginOnly

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached in this test")

    mw = SameOriginOnly(app)

    def scope(host: str, origin: str | None = None) -> dict[str, Any]:
        headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
        return {"type": "websocket", "headers": headers}

    assert mw.allowed(scope("127.0.0.1:8470")) is None  # no Origin: curl, the CLI
    assert mw.allowed(scope("127.0.0.1:8470", "http://127.0.0.1:8470")) is None  # its own page
    assert mw.allowed(scope("localhost:8470", "http://localhost:8470")) is None
    assert "Origin" in str(mw.allowed(scope("127.0.0.1:8470", "https://evil.example")))  # a foreign page
    assert "Origin" in str(mw.allowed(scope("127.0.0.1:8470", "http://127.0.0.1:9999")))  # another local app
    assert "Host" in str(mw.allowed(scope("evil.example:8470", "http://evil.example:8470")))  # DNS rebinding
