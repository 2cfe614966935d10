"""A full-resolution still through the processes a user runs: `evidence-agent run --config` (synthetic camera
with a 4608x2592 "sensor", 640x360 video), Mosquitto with TLS from `evidence-officer broker-setup`,
`evidence-officer ingest` and `evidence-officer cmd ... snapshot --resolution full`: the still (several MB of
JPEG, chunked under the broker's packet limit) arrives at customs, verifies, and is the sensor size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.console_stack import ConsoleStack, build_console_stack
from tests.support.fleet import agent_cli, officer_cli
from tests.support.helpers import wait_for, wait_until

DEVICE, SITE = "cam-doc", "farm-doc"
SENSOR = (4608, 2592)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import shutil

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    root = tmp_path_factory.mktemp("fullstill")
    st: ConsoleStack = build_console_stack(root, broker_setup={DEVICE: SITE})
    try:
        received = st.start_ingest()
        st.start_device(st.device_config(DEVICE, SITE, width=640, height=360, fps=10, sensor=SENSOR))
        yield {"st": st, "root": root, "received": received}
    finally:
        st.close()


def _cmd(st: ConsoleStack, *args: str) -> dict[str, Any]:
    """`evidence-officer cmd DEVICE ... --json` as officer-alice."""
    tls = st.broker.pki.client("officer-alice")  # type: ignore[union-attr]
    res = officer_cli("cmd", DEVICE, *args, "--broker", st.broker.url, "--site", SITE, "--keys",
                      str(st.officer_dirs["officer-alice"]), "--cafile", str(tls.ca), "--cert", str(tls.cert),
                      "--key", str(tls.key), "--device-ca", str(st.device_ca), "--timeout", "60", "--json",
                      timeout=240)
    return dict(json.loads(res.stdout)) if res.stdout.strip().startswith("{") else {"ok": False, "error": res.stderr}


def _status_ok(st: ConsoleStack) -> bool:
    """The device answers and its camera has delivered frames (a still can be taken)."""
    reply = _cmd(st, "status")
    return bool(reply.get("ok")) and int(((reply.get("result") or {}).get("camera") or {}).get("frames") or 0) > 0


def test_full_resolution_snapshot_arrives_verifies_and_is_the_sensor_size(stack: dict[str, Any]) -> None:
    st, received = stack["st"], stack["received"]
    wait_for(lambda: _status_ok(st), 240, step=1.0)
    reply = _cmd(st, "snapshot", "--label", "identity_document", "--resolution", "full")
    assert reply.get("ok"), reply
    result = reply["result"]
    assert result["resolution"] == "full" and (result["width"], result["height"]) == SENSOR
    stream = _cmd(st, "snapshot", "--label", "other")
    assert stream["ok"] and (stream["result"]["width"], stream["result"]["height"]) == (640, 360)
    bad = _cmd(st, "snapshot", "--args", json.dumps({"resolution": "8k"}))
    assert not bad.get("ok") and "resolution" in json.dumps(bad)
    name = result["media"]["name"]
    assert result["media"]["size"] > 500_000  # several hundred kB at least: more than one MQTT packet's chunk
    found: list[Path] = []
    assert wait_until(lambda: found.extend((received / DEVICE).rglob(name)) or found, 240, step=0.5), \
        (st.root / "ingest.log").read_text(errors="replace")[-3000:]
    with Image.open(found[0]) as img:
        assert img.size == SENSOR
    checked: dict[str, Any] = {}

    def verified() -> bool:  # once the stream still's record has arrived too, everything received verifies
        res = agent_cli("verify", str(received / DEVICE), "--ca", str(st.device_ca), "--json")
        checked.update(json.loads(res.stdout), rc=res.returncode, out=res.stdout)
        seqs = {s["seq"] for s in checked.get("stills", [])}  # report sections are top-level keys in --json
        return {result["seq"], stream["result"]["seq"]} <= seqs and res.returncode == 0

    wait_until(verified, 120, step=1.0)
    res_rc, sizes = checked["rc"], {s["seq"]: s for s in checked.get("stills", [])}
    assert res_rc == 0, checked["out"][-3000:]
    assert sizes[result["seq"]] == {"seq": result["seq"], "width": SENSOR[0], "height": SENSOR[1],
                                    "resolution": "full"}
