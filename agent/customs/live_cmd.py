"""``evidence-officer live DEVICE``: ask for a live view, verify every frame, save it, report latency.

The officer picks the nonce, so the session topic (``sha256(nonce)[:24]``) is known before asking: the
subscription is made first and no frame is lost. Every frame must carry this nonce and session, a valid
device signature (key from the device-signed start reply) and the hash of its JPEG; a frame failing any
check is counted and discarded, never shown or saved.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import queue
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import AgentError, VerificationError
from agent.core.fsutil import atomic_write
from agent.customs.cmd_cmd import OfficerClient, add_connection_args, connect
from agent.wire.live_frames import session_id_for, verify_message
from agent.wire.mqtt import Inbound
from agent.wire.topics import DeviceTopics


@dataclass
class LiveStats:
    session: str = ""
    frames: int = 0
    rejected: int = 0
    missing: int = 0
    end_reason: str | None = None
    sealed: dict[str, Any] | None = None  # the device's evidence record of this session (seq, record_hash)
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # capture -> verified here
    transit_ms: list[float] = field(default_factory=list, repr=False)  # capture -> received here
    errors: list[str] = field(default_factory=list)

    def percentile(self, p: float, which: str = "latencies_ms") -> float | None:
        data: list[float] = sorted(getattr(self, which))
        if not data:
            return None
        return data[min(len(data) - 1, max(0, math.ceil(p / 100 * len(data)) - 1))]

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_ms", "transit_ms")}
        out["errors"] = self.errors[:20]
        for p in (50, 95):
            v = self.percentile(p)
            out[f"latency_p{p}_ms"] = None if v is None else round(v, 2)
            t = self.percentile(p, "transit_ms")
            out[f"transit_p{p}_ms"] = None if t is None else round(t, 2)
        out["latency_max_ms"] = round(max(self.latencies_ms), 2) if self.latencies_ms else None
        return out


class FrameSink:
    """Saves verified frames: one JPEG per frame, or one MJPEG stream; plus ``frames.jsonl``.

Each line keeps the signed part of the message (framing, header, signature; base64) so a frame can be
re-verified later from the line plus its JPEG, and matched against the device's sealed live record.
"""

    def __init__(self, out: Path, mjpeg: bool) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._mjpeg: IO[bytes] | None = (out / "live.mjpeg").open("wb") if mjpeg else None
        if not mjpeg:
            (out / "frames").mkdir(exist_ok=True)
        self._headers = (out / "frames.jsonl").open("w")

    def add(self, header: dict[str, Any], jpeg: bytes, message: bytes) -> None:
        """``message_sha256`` matches the line of this frame in the device's sealed "live" record."""
        if self._mjpeg is not None:
            self._mjpeg.write(jpeg)
        else:
            (self.out / "frames" / f"{header['seq']:06d}.jpg").write_bytes(jpeg)
        line = {"header": header, "message_sha256": hashlib.sha256(message).hexdigest(),
                "message_b64": base64.b64encode(message[: len(message) - len(jpeg)]).decode()}
        self._headers.write(json.dumps(line, sort_keys=True) + "\n")

    def close(self) -> None:
        if self._mjpeg is not None:
            self._mjpeg.close()
        self._headers.close()


def run_live(client: OfficerClient, site: str, device: str, *, seconds: float, params: dict[str, Any],
             sink: FrameSink | None = None, keepalive: bool = True, timeout: float = 10.0) -> LiveStats:
    """Start a session, verify frames until ``seconds`` pass or the device ends it, then stop it."""
    nonce = secrets.token_hex(16)
    session = session_id_for(nonce)
    stats = LiveStats(session=session)
    inbox: queue.Queue[tuple[int, bytes]] = queue.Queue()
    topic = DeviceTopics(site, device).live(session)

    def on_frame(msg: Inbound) -> None:
        inbox.put((time.time_ns(), msg.payload))

    client.link.subscribe_wait(topic, on_frame, qos=0)
    reply, leaf = client.request_signed(site, device, "live.start", params, nonce=nonce, timeout=timeout)
    result = reply.get("result") or {}
    if result.get("session") != session:
        raise VerificationError(f"device answered with session {result.get('session')!r}, expected {session}")
    device_key = leaf.public_key()
    if not isinstance(device_key, ec.EllipticCurvePublicKey):
        raise VerificationError("device certificate key is not ECDSA")
    if sink is not None:
        atomic_write(sink.out / "start-reply.json", json.dumps(reply, sort_keys=True).encode())
    keepalive_every = float(result.get("keepalive_timeout_s", 10.0)) / 3
    start = time.monotonic()
    next_keepalive = start + keepalive_every
    next_seq = 0
    stopped = False
    deadline = start + seconds
    while True:
        now = time.monotonic()
        if now >= deadline and not stopped:
            stopped = True
            client.send(site, device, "live.stop", {"session": session})
            deadline = now + 3.0  # wait for the end message
        elif now >= deadline:
            stats.errors.append("no end-of-session message from the device")
            break
        if keepalive and not stopped and now >= next_keepalive:
            client.send(site, device, "live.keepalive", {"session": session})
            next_keepalive = now + keepalive_every
        try:
            recv_ns, payload = inbox.get(timeout=min(0.2, max(0.0, deadline - now)))
        except queue.Empty:
            continue
        try:
            frame = verify_message(payload, device_key, device=device, session=session, nonce=nonce)
        except (VerificationError, ValueError) as exc:
            stats.rejected += 1
            stats.errors.append(str(exc))
            continue
        if frame.end:
            stats.end_reason = str(frame.header.get("reason"))
            stats.sealed = frame.header.get("sealed")
            stats.missing += max(0, int(frame.header.get("frames", 0)) - next_seq)
            break
        seq = int(frame.header["seq"])
        if seq < next_seq:
            stats.rejected += 1
            stats.errors.append(f"frame {seq} repeated or out of order")
            continue
        stats.missing += seq - next_seq
        next_seq = seq + 1
        stats.frames += 1
        verified_ns = time.time_ns()
        stats.latencies_ms.append((verified_ns - int(frame.header["capture_wall_us"]) * 1000) / 1e6)
        stats.transit_ms.append((recv_ns - int(frame.header["capture_wall_us"]) * 1000) / 1e6)
        if sink is not None:
            sink.add(frame.header, frame.jpeg, payload)
    return stats


def _cmd_live(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("width", args.width), ("height", args.height), ("fps", args.fps),
                                ("quality", args.quality), ("seconds", args.seconds + 5)) if v is not None}
    link, client, site = connect(args)
    sink = FrameSink(args.out, args.mjpeg) if args.out else None
    try:
        stats = run_live(client, site, args.device, seconds=args.seconds, params=params, sink=sink,
                         timeout=args.timeout)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if sink is not None:
            sink.close()
        link.close(offline=False)
    summary = stats.summary()
    if args.out:
        atomic_write(args.out / "stats.json", json.dumps(summary, sort_keys=True, indent=1).encode())
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(f"session {stats.session}: {stats.frames} verified frames, {stats.rejected} rejected, "
              f"{stats.missing} missing; ended: {stats.end_reason}")
        print(f"latency capture->verified: p50 {summary['latency_p50_ms']} ms, p95 {summary['latency_p95_ms']} ms, "
              f"max {summary['latency_max_ms']} ms")
    return 0 if stats.frames > 0 and stats.rejected == 0 else 1


def register(subparsers: Any) -> None:
    """``evidence-officer live DEVICE --broker URL [--seconds N] [--out DIR] [--json]``."""
    p = subparsers.add_parser("live", help="watch a device live; every frame is verified")
    add_connection_args(p)
    p.add_argument("--seconds", type=float, default=10.0, help="how long to watch")
    p.add_argument("--out", type=Path, help="save verified frames, signed headers and stats here")
    p.add_argument("--mjpeg", action="store_true", help="save one live.mjpeg instead of one JPEG per frame")
    p.add_argument("--width", type=int, help="frame width asked for (the device clamps it to its maximum)")
    p.add_argument("--height", type=int, help="frame height asked for (clamped likewise)")
    p.add_argument("--fps", type=float, help="frames per second asked for (clamped likewise)")
    p.add_argument("--quality", type=int, help="JPEG quality 1-100 asked for (clamped likewise)")
    p.set_defaults(func=_cmd_live)

