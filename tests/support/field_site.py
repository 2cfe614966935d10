"""A customs site for system tests: TLS Mosquitto, a customs CA, a provisioned device, the real processes.

``FieldSite`` builds what a technician and customs would have: a broker that trusts the customs CA, a
device key whose certificate the customs CA issued (CN = device id), an ingest identity, and writes the
device's TOML config. ``run_agent`` and ``start_ingest`` start the real ``evidence-agent run`` and
``evidence-officer ingest`` processes (``python -m ...`` from this checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.hostsetup.provision import to_toml
from agent.signing import keys
from tests.support.broker import Mosquitto
from tests.support.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PEM = serialization.Encoding.PEM


def need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")


def cli(module: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from this checkout to completion."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=REPO)


def agent_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return cli("agent.device.cli", *args, timeout=timeout)


class FieldSite:
    """Broker + customs CA; devices are issued on demand, each with its own folder and config."""

    def __init__(self, root: Path, site_id: str = "site-1") -> None:
        need_mosquitto()
        self.root = root
        self.site_id = site_id
        self.broker = Mosquitto(root / "broker")
        assert self.broker.pki is not None
        self.customs_key, self.customs_ca = keys.make_ca("Customs Device CA", "Customs")
        self.customs_ca_file = root / "customs-ca.pem"
        self.customs_ca_file.write_bytes(self.customs_ca.public_bytes(PEM))
        with self.broker.pki.ca.open("ab") as fh:  # the broker accepts device certificates the customs CA issued
            fh.write(self.customs_ca.public_bytes(PEM))
        self.broker.start()

    def close(self) -> None:
        self.broker.stop()

    def issue(self, key_dir: Path, cn: str, *, eku: tuple[x509.ObjectIdentifier, ...] | None = None,
              days: int = 825) -> None:
        """Device key + a customs-issued certificate with CN ``cn`` (the technician's provisioning)."""
        keys.init_identity(key_dir, cn, "Test Enterprise", csr=True)
        csr = x509.load_pem_x509_csr((key_dir / keys.CSR_FILE).read_bytes())
        pub = csr.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        leaf = keys.issue_leaf(self.customs_key, self.customs_ca, csr.subject, pub, days=days, eku=eku)
        keys.install_certificate(key_dir, leaf.public_bytes(PEM), self.customs_ca.public_bytes(PEM))

    def device_config(self, folder: Path, device_id: str, *, cert_cn: str | None = None,
                      **sections: dict[str, Any]) -> Path:
        """Keys, officers folder and a TOML config for ``device_id``; ``sections`` override/add sections."""
        key_dir = folder / "keys"
        if not (key_dir / keys.KEY_FILE).exists():
            self.issue(key_dir, cert_cn or device_id)
        (folder / "officers").mkdir(parents=True, exist_ok=True)
        grants = folder / "officers" / "permissions.json"
        if not grants.exists():  # the device grants only what this lists: here every trusted officer, every command
            grants.write_text('{"*": ["*"]}')
        assert self.broker.pki is not None
        data: dict[str, Any] = {
            "device": {"id": device_id, "site_id": self.site_id},
            "identity": {"key_dir": str(key_dir)},
            "vault": {"path": str(folder / "vault")},
            "capture": {"backend": "synthetic", "width": 320, "height": 180, "fps": 10, "still_interval_s": 2.0},
            "gps": {"source": "simulated"},
            "video": {"enabled": True, "segment_seconds": 2.0, "fragment_seconds": 1.0, "overlay": True},
            "anchor": {"enabled": True, "batch_interval_s": 2.0, "backoff_initial_s": 1.0},
            "uplink": {"enabled": True, "outbox_path": str(folder / "outbox.sqlite"), "status_interval_s": 2.0,
                       "mqtt": {"broker": self.broker.url, "client_id": device_id,
                                "reconnect_min_s": 1.0, "reconnect_max_s": 2.0,
                                "tls": {"ca_file": str(self.broker.pki.ca),
                                        "cert_file": str(key_dir / keys.CERT_FILE),
                                        "key_file": str(key_dir / keys.KEY_FILE)}},
                       "commands": {"trust_dir": str(folder / "officers")}},
        }
        for name, values in sections.items():
            if values is None:
                data.pop(name, None)
            elif isinstance(data.get(name), dict):
                data[name] = _merge(data[name], values)
            else:
                data[name] = values
        config = folder / "agent.toml"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(to_toml(data))
        return config

    def start_ingest(self, out: Path, *extra: str) -> subprocess.Popen[str]:
        """The officer's ``evidence-officer ingest`` (identity ingest-1), stopping after ``--idle`` seconds."""
        assert self.broker.pki is not None
        cert = self.broker.pki.client("ingest-1")
        return subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", self.broker.url, "--out", str(out),
             "--cafile", str(cert.ca), "--cert", str(cert.cert), "--key", str(cert.key),
             "--client-id", "ingest-1", "--trust-ca", str(self.customs_ca_file), *extra],
            env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_clip(path: Path, scenes: list[tuple[str, float]], *, fps: int = 10, size: tuple[int, int] = (320, 180),
               codec: str = "libx264", seed: int = 7) -> Path:
    """A clip made of scenes: ("live", s) a fixed view with a moving object and sensor noise, ("dark", s),
    ("cover", s), ("frozen", s) one frame repeated, ("moved", s) the view turned; encoded with PyAV at
    ordinary settings (``codec``: libx264 crf 23 or mpeg4, a keyframe a second), so a frozen stretch is
    not pixel-identical from frame to frame."""
    import av

    w, h = size
    rng = np.random.default_rng(seed)
    base = textured(rng, h * 2, w * 2)
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.gop_size = fps  # a keyframe a second, as IP cameras and recorders send
    if codec == "libx264":
        stream.options = {"preset": "veryfast", "crf": "23"}
    index = 0
    frozen: np.ndarray | None = None
    for scene, seconds in scenes:
        for _ in range(round(seconds * fps)):
            x = 20
            img = base[40:40 + h, x:x + w].copy()
            box = (index * 4) % (w - 40)
            img[h // 2:h // 2 + 30, box:box + 30] = (0, 0, 230)
            noise = rng.integers(-3, 4, size=img.shape)
            img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            if scene == "dark":
                img = (img * 0.08).astype(np.uint8)
            elif scene == "cover":
                img = np.clip(np.full(img.shape, 20, np.int16) + rng.integers(-2, 3, img.shape), 0, 255
                              ).astype(np.uint8)
            elif scene == "frozen":
                frozen = img if frozen is None else frozen
                img = frozen
            elif scene == "moved":
                img = base[100:100 + h, x + 120:x + 120 + w].copy()
            if scene != "frozen":
                frozen = None
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
            index += 1
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def textured(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random texture (blobs of every grey level): enough structure for every analytics check."""
    import cv2

    small = rng.integers(0, 256, size=(max(2, h // 10), max(2, w // 10), 3), dtype=np.uint8)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    fine = rng.integers(-25, 26, size=(h, w, 1))  # fine detail: what makes a re-encoded freeze flicker
    return np.clip(smooth + fine, 0, 255).astype(np.uint8)


def records(vault: Path) -> list[dict[str, Any]]:
    """Every signed record under ``vault`` (a device vault or the ingest's copy), in sequence order."""
    from agent.signing.records import parse_sidecar

    recs = [parse_sidecar(p.read_bytes(), str(p)).record for p in vault.rglob("*.rec")]
    return sorted(recs, key=lambda r: int(r["seq"]))


def events(vault: Path) -> set[tuple[str, str]]:
    """(type, phase) of every sealed ``event`` record."""
    return {(r["extra"].get("type"), r["extra"].get("phase")) for r in records(vault) if r["kind"] == "event"}
