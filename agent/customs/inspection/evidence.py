"""What the ingested evidence says about one inspection: its items, the device's track, the alerts.

Reads ``OUT/<device>/`` as written by ``evidence-officer ingest`` (the device vault's layout). Names and
numbers come from the signed records, which the ingest already checked; nothing here trusts a file
name beyond the ``NNNNNNNNNNNN.kind.rec`` pattern, and each media path is the record's own name in the
record's own bucket. Record files are read without following symbolic links and within the record size
limit; media is only opened later, the same way (``html.thumbnail``, ``report.write_bundle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.errors import VerificationError
from agent.core.vocab import ALERT_KINDS, RECORD_EVENTS
from agent.customs.i18n import N_
from agent.signing.layout import ITEM_RE, bucket_of
from agent.signing.records import parse_sidecar
from agent.signing.sources import MAX_SIDECAR_BYTES, read_regular

IMAGE_TYPES = ("image/jpeg", "image/png")  # what the console serves as a picture (nothing else, never sniffed)

# The anti-falsification alerts a device seals, with what the officer should do about each.
ADVICE = {
    "too_dark": N_("Lens covered or lights off: ask the representative to uncover the camera and show the scene "
                   "again; if it recurs, record a decision to shift to an on-site inspection."),
    "uniform": N_("The picture is uniform (lens covered or pointed at a wall): ask for the camera to be turned "
                  "back to the site; repeated obstruction is a reason to shift on-site."),
    "frozen": N_("The picture stopped moving (frozen or replayed footage): ask the representative to move in "
              "front of the camera; misleading footage is a reason to shift on-site."),
    "replayed": N_("The device's footage repeats an earlier stretch (a loop or a rewound recording): misleading "
                   "footage; ask the representative to do something unmistakable on camera, and shift on-site if "
                   "it is confirmed."),
    "obstructed": N_("Part of the view is blocked: ask for the obstruction to be removed and the scene shown again; "
                     "repeated obstruction is a reason to shift on-site."),
    "internal_error": N_("A part of the device's agent failed and was restarted or the agent restarts itself: note "
                         "the time; evidence sealed before it stays valid."),
    "storage_error": N_("The device could not store some evidence (named in the event): note the gap."),
    "scene_change": N_("The camera was moved or the scene swapped: ask where the camera points now and re-check "
                       "the location."),
    "geofence": N_("The device left the registered site: re-check the location against the site map."),
    "camera_lost": N_("The camera stopped delivering frames: wait for it to return; note the gap."),
    "camera_failed": N_("The camera failed: the inspection cannot continue remotely without it."),
    "clock_alarm": N_("The device's clock jumped or disagrees with GPS: rely on sealing order, note the alarm."),
    "vault_full": N_("The device's storage is full: evidence capture is paused."),
    "tamper": N_("The enclosure was opened: ask why, and consider shifting on-site."),
    "restart": N_("The device restarted during the inspection (power cut, crash, reboot or service restart): "
                  "nothing was recorded between its last record and the restart; ask the representative what "
                  "happened and note the gap; repeated restarts are a reason to shift on-site."),
}


@dataclass(frozen=True)
class Item:
    seq: int
    kind: str
    record_hash: str
    record: dict[str, Any]
    media: Path | None  # the ingested media file, when it has arrived

    @property
    def wall(self) -> str:
        return str(self.record["captured"]["wall"])

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.record.get("extra") or {})

    @property
    def device(self) -> str:
        """The device that sealed it (the signed record's ``device_id``)."""
        return str(self.record.get("device_id"))

    @property
    def wall_us(self) -> int:
        return _wall_us(self)


def load_items(device_dir: Path, first_seq: int, last_seq: int | None = None) -> list[Item]:
    """The ingested items with ``first_seq <= seq <= last_seq`` (in seq order); unreadable ones skipped."""
    items_dir = device_dir / "items"
    if not items_dir.is_dir():
        return []
    out: list[Item] = []
    for bucket in sorted(p for p in items_dir.iterdir() if p.is_dir() and p.name >= bucket_of(first_seq)):
        if last_seq is not None and bucket.name > bucket_of(last_seq):
            break
        for rec_path in sorted(bucket.glob("*.rec")):
            m = ITEM_RE.match(rec_path.name)
            if m is None:
                continue
            seq = int(m.group(1))
            if seq < first_seq or (last_seq is not None and seq > last_seq):
                continue
            try:
                _size, data = read_regular(rec_path, MAX_SIDECAR_BYTES)  # no symlinks, no oversized records
                if data is None:
                    continue
                signed = parse_sidecar(data, str(rec_path))
            except (OSError, VerificationError):
                continue
            rec = signed.record
            if rec.get("seq") != seq or rec.get("kind") != m.group(2):
                continue
            media = rec.get("media") or {}
            name = media.get("name")
            path = bucket / str(name) if isinstance(name, str) and ITEM_RE.match(name) else None
            out.append(Item(seq, str(rec["kind"]), signed.hash, rec,
                            path if path is not None and path.is_file() and not path.is_symlink() else None))
    return out


def restart_alert(item: Item, before: Item | None) -> dict[str, Any]:
    """A ``restart`` record inside the case: how long the device was silent and whether it rebooted."""
    extra = item.extra
    details: dict[str, Any] = {"reason": extra.get("reason"), "orphans": len(extra.get("orphans") or [])}
    if before is not None:
        gap_us = _wall_us(item) - _wall_us(before)
        details["silent_s"] = round(gap_us / 1e6, 3) if gap_us >= 0 else None
        details["previous_seq"] = before.seq
        was, now = (before.record.get("captured") or {}).get("boot_id"), extra.get("boot_id")
        details["rebooted"] = None if not was or not now else was != now
    silent, rebooted = details.get("silent_s"), details.get("rebooted")
    what = (N_("the device rebooted") if rebooted else N_("the agent restarted (same boot)") if rebooted is False
            else N_("the device restarted"))
    summary = what + (f" after {silent:g} s without a record" if silent is not None else "")
    return {"seq": item.seq, "at": item.wall, "at_us": _wall_us(item), "type": "restart",
            "record_hash": item.record_hash,
            "details": details, "summary": summary, "summary_msg": what, "advice": ADVICE["restart"]}


def _wall_us(item: Item) -> int:
    wall = (item.record.get("captured") or {}).get("wall_us")
    return wall if isinstance(wall, int) else 0


def alert_of(item: Item, before: Item | None = None) -> dict[str, Any] | None:
    """An alert for the officer, with what to do: an event/tamper/alert record (onsets only), or a restart of
    the device (``before``: the item sealed just before it, when known)."""
    if item.kind == "restart":
        return restart_alert(item, before)
    if item.kind not in ALERT_KINDS:
        return None
    extra = item.extra
    kind = "tamper" if item.kind == "tamper" else str(extra.get("type") or item.kind)
    if extra.get("phase") not in (None, "onset") or kind in RECORD_EVENTS:
        return None
    return {"seq": item.seq, "at": item.wall, "at_us": _wall_us(item), "type": kind, "record_hash": item.record_hash,
            "details": {k: v for k, v in extra.items() if k not in ("inspection", "type", "phase")},
            "advice": ADVICE.get(kind, N_("Check the live view and the evidence around this time."))}


def alerts(items: list[Item]) -> list[dict[str, Any]]:
    """Every alert among ``items`` (one case's records, in sequence order), each with its end: ``end_at`` and
    ``end_seq`` of the next ``phase: end`` record of the same type, ``duration_s`` between the two (None and
    ``ongoing`` while no end was sealed); a restart ends when the device is back, after ``silent_s``."""
    out = []
    open_: dict[str, dict[str, Any]] = {}
    for i, it in enumerate(items):
        before = items[i - 1] if i > 0 and items[i - 1].seq == it.seq - 1 else None
        alert = alert_of(it, before)
        if alert is not None:
            alert.update(end_at=None, end_seq=None, duration_s=None, ongoing=True)
            if alert["type"] == "restart":
                silent = alert["details"].get("silent_s")
                alert.update(end_at=it.wall, end_seq=it.seq, duration_s=silent, ongoing=False)
            else:
                open_[alert["type"]] = alert
            out.append(alert)
        elif it.kind in ALERT_KINDS and it.extra.get("phase") == "end":
            onset = open_.pop(str(it.extra.get("type") or it.kind), None)
            if onset is not None:
                gap_us = _wall_us(it) - _wall_us_of(onset)
                onset.update(end_at=it.wall, end_seq=it.seq, ongoing=False,
                             duration_s=round(gap_us / 1e6, 3) if gap_us >= 0 else None)
    return out


def merged(by_device: dict[str, list[Item]]) -> list[Item]:
    """Several devices' items in one timeline: capture-time order (a device's own order breaks ties)."""
    out = [it for items in by_device.values() for it in items]
    if len(by_device) > 1:
        out.sort(key=lambda it: (it.wall_us, it.device, it.seq))
    return out


def alerts_of(by_device: dict[str, list[Item]]) -> list[dict[str, Any]]:
    """``alerts`` of each device's own run (an alert ends on its own device), merged in time, each naming
    its ``device``."""
    out = [{**a, "device": device} for device, items in by_device.items() for a in alerts(items)]
    out.sort(key=lambda a: (int(a.get("at_us") or 0), a["device"], a["seq"]))
    return out


def _wall_us_of(alert: dict[str, Any]) -> int:
    return int(alert.get("at_us", 0))


def track(items: list[Item]) -> list[tuple[float, float]]:
    """Every sealed GPS fix in order (no fix is left out, never filled in)."""
    out = []
    for it in items:
        gps = it.record.get("gps") or {}
        if isinstance(gps.get("lat"), int | float) and isinstance(gps.get("lon"), int | float):
            out.append((float(gps["lat"]), float(gps["lon"])))
    return out


def device_dir_of(evidence_root: Path, device: str) -> Path:
    return evidence_root / device
