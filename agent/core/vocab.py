"""The one vocabulary both wings and the console pages share: record kinds, event types, labels, id patterns.

Every other module imports these names; the console serves :func:`as_json` at ``/api/vocab`` so its pages
never carry a copy. Patterns are anchored regular expressions (Python ``re`` and JavaScript agree on them).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, get_args

# -- ids -------------------------------------------------------------------------------------------------
#: Device, site and officer ids and live session ids: one MQTT topic level and a certificate CN. At most 63
#: characters, as a device accepts at provisioning: its id defaults to its hostname, whose label is at most 63
#: characters (RFC 1035), which also stays inside X.509's 64-character CN bound.
ID_MAX: Final = 63
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: Inspection case numbers (may hold '/', e.g. "2026/0042"); never a topic level.
CASE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
#: A record kind as the wire carries it (item names ``{seq:012d}.{kind}.{ext}``): plain lowercase.
KIND_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,31}$"
#: An event's ``extra.type`` as the console searches it.
EVENT_TYPE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"



def _whole(pattern: str) -> re.Pattern[str]:
    """Compiled so ``match`` takes the whole string: Python's ``$`` also matches before a final newline."""
    return re.compile(pattern.removesuffix("$") + r"\Z")


ID_RE: Final = _whole(ID_PATTERN)
CASE_RE: Final = _whole(CASE_PATTERN)
KIND_RE: Final = _whole(KIND_PATTERN)
EVENT_TYPE_RE: Final = _whole(EVENT_TYPE_PATTERN)
SHA256_RE: Final = _whole(SHA256_PATTERN)

# -- record kinds ----------------------------------------------------------------------------------------
#: Every kind a device seals.
RECORD_KINDS: Final = ("restart", "still", "segment", "event", "mark", "live", "checkpoint", "receipt",
                       "selftest", "tamper", "alert", "inspection_start", "inspection_end", "decision", "report",
                       "audio")
#: Kinds an officer hears of as alerts (also repeated on the device's ``alert`` topic).
ALERT_KINDS: Final = ("event", "tamper", "alert")

# -- two-way voice (agent/audio, agent/uplink/voice.py) ---------------------------------------------------
#: Officer commands that run a voice session (``voice.start`` brings its own keepalive and stop).
VOICE_COMMANDS: Final = ("voice.start", "voice.stop", "voice.keepalive")
#: Who spoke in a sealed ``audio`` item: the site's microphone, or the officer's voice played on the site.
AUDIO_DIRECTIONS: Final = ("site", "officer")
#: Media type and extension of a sealed ``audio`` item (Opus in Ogg, one file per direction and period).
AUDIO_MEDIA_TYPE: Final = "audio/ogg"
AUDIO_EXT: Final = "ogg"

# -- event types (``extra.type`` of an ``event`` record) -------------------------------------------------
AnalyticsEvent = Literal["too_dark", "uniform", "frozen", "replayed", "obstructed", "scene_change", "geofence"]
#: What the video analytics (anti-falsification) raise.
ANALYTICS_EVENTS: Final[tuple[str, ...]] = get_args(AnalyticsEvent)
#: The camera stopped delivering frames (onset) / came back (``camera_restored``) / gave up for good.
CAMERA_LOST: Final = "camera_lost"
CAMERA_RESTORED: Final = "camera_restored"
CAMERA_FAILED: Final = "camera_failed"
CAMERA_OUTAGE_EVENTS: Final = (CAMERA_LOST, CAMERA_FAILED)
#: What the device itself raises about its own state.
#: The device installed a new officer trust bundle (agent/uplink/trust_bundle.py).
TRUST_UPDATED: Final = "trust_updated"
#: ``internal_error``: a part of the agent died (restarted or the process exits); ``storage_error``: what storage
#: failures kept from being sealed.
DEVICE_EVENTS: Final = (CAMERA_LOST, CAMERA_RESTORED, CAMERA_FAILED, "clock_alarm", "vault_full", "media_evicted",
                        "internal_error", "storage_error", TRUST_UPDATED)
#: An officer's advance notice of a scheduled inspection, sealed on the device: a record, never an alert.
INSPECTION_NOTICE: Final = "inspection_notice"
#: The officer zoomed or panned the view (``view.zoom``), or it went back to the full view (reset, end of the live
#: view, camera restored): the sealed record says which region of the sensor/source was shown from then on.
VIEW_ZOOM: Final = "view_zoom"
#: Events that only record something (never raised to the officer as an alert).
RECORD_EVENTS: Final = (INSPECTION_NOTICE, VIEW_ZOOM)
EVENT_TYPES: Final = (*ANALYTICS_EVENTS, *DEVICE_EVENTS, *RECORD_EVENTS)
#: Events that mark a gap in the footage (segment verification expects one around a hole).
GAP_EVENTS: Final = frozenset({CAMERA_LOST, CAMERA_RESTORED, "vault_full", "storage_error"})

# -- commands --------------------------------------------------------------------------------------------
#: The signed command that gives a device advance notice of a scheduled inspection.
NOTICE_COMMAND: Final = "inspection.notice"
#: How far ahead a notice may schedule an inspection (a device refuses a later one, and one in the past).
NOTICE_MAX_AHEAD_DAYS: Final = 365
#: The signed command that zooms/pans the view (digital zoom: a region of the sensor or source frame).
ZOOM_COMMAND: Final = "view.zoom"
#: The largest zoom factor a device accepts (the region is at least 1/ZOOM_MAX of the frame's width and height).
ZOOM_MAX: Final = 8.0
#: Why the view changed, as a ``view_zoom`` event says it.
ZOOM_REASONS: Final = ("officer", "reset", "live_ended", "camera_restored")

# -- labels ----------------------------------------------------------------------------------------------
#: The check-in steps of a remote inspection, in order, with the title each shows.
CheckinStep = Literal["location", "identity_document", "power_of_attorney", "credentials"]
CHECKIN_STEPS: Final[tuple[str, ...]] = get_args(CheckinStep)
STEP_TITLES: Final = {"location": "Location of the registered site",
                      "identity_document": "Representative's identity document",
                      "power_of_attorney": "Power of attorney", "credentials": "Officers' credentials presented"}
SnapshotLabel = Literal[CheckinStep, "inspection", "other"]
#: What an officer's still may say it shows.
SNAPSHOT_LABELS: Final[tuple[str, ...]] = get_args(SnapshotLabel)
#: The pixel size an officer's still is asked at: the video stream's, or the camera's full sensor (a file's or
#: stream's native size on other backends) for a readable document.
StillResolution = Literal["stream", "full"]
STILL_RESOLUTIONS: Final[tuple[str, ...]] = get_args(StillResolution)
#: How an inspection ended, and an officer's decision, in words (records and the CLI carry the keys).
OUTCOME_LABELS: Final = {"completed": "Completed remotely", "shift_to_onsite": "Shifted to an on-site inspection",
                         "aborted": "Aborted"}
DECISION_LABELS: Final = {"continue": "Continue remotely", "shift_to_onsite": "Shift to an on-site inspection"}
#: Event types (and the other alert types an officer sees) in words.
EVENT_LABELS: Final = {"too_dark": "Too dark", "uniform": "Uniform picture", "frozen": "Frozen picture",
                       "replayed": "Replayed footage", "obstructed": "View obstructed", "scene_change": "Scene changed",
                       "geofence": "Left the registered site", CAMERA_LOST: "Camera lost",
                       CAMERA_RESTORED: "Camera restored", CAMERA_FAILED: "Camera failed",
                       "clock_alarm": "Clock alarm", "vault_full": "Storage full", "media_evicted": "Media evicted",
                       "internal_error": "Internal error", "storage_error": "Storage error",
                       TRUST_UPDATED: "Officer trust updated", "tamper": "Enclosure opened",
                       "restart": "Device restarted", INSPECTION_NOTICE: "Advance notice",
                       VIEW_ZOOM: "View zoomed"}
#: What an inspection's timeline entries are, in words.
ENTRY_LABELS: Final = {"readiness": "Self-test", "start": "Start", "checkin": "Check-in", "mark": "Mark",
                       "snapshot": "Snapshot", "decision": "Decision", "end": "End", "report": "Report",
                       "note": "Note", "notice": "Advance notice"}


def label_of(labels: dict[str, str], key: object) -> str | None:
    """The words for ``key``; an unknown key is shown as given (never dropped), ``None`` stays ``None``."""
    if key is None:
        return None
    return labels.get(str(key), str(key))


def as_json() -> dict[str, Any]:
    """The vocabulary as the console pages fetch it (``/api/vocab``)."""
    return {
        "patterns": {"id": ID_PATTERN, "case": CASE_PATTERN, "kind": KIND_PATTERN,
                     "event_type": EVENT_TYPE_PATTERN, "sha256": SHA256_PATTERN},
        "id_max": ID_MAX,
        "record_kinds": list(RECORD_KINDS), "alert_kinds": list(ALERT_KINDS),
        "event_types": list(EVENT_TYPES), "analytics_events": list(ANALYTICS_EVENTS),
        "device_events": list(DEVICE_EVENTS), "record_events": list(RECORD_EVENTS),
        "checkin_steps": list(CHECKIN_STEPS), "step_titles": dict(STEP_TITLES),
        "snapshot_labels": list(SNAPSHOT_LABELS),
        "outcome_labels": dict(OUTCOME_LABELS), "decision_labels": dict(DECISION_LABELS),
        "event_labels": dict(EVENT_LABELS), "entry_labels": dict(ENTRY_LABELS),
        "voice_commands": list(VOICE_COMMANDS), "audio_directions": list(AUDIO_DIRECTIONS),
        "zoom_command": ZOOM_COMMAND, "zoom_max": ZOOM_MAX,
    }
