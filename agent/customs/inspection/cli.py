"""``evidence-officer inspection ...``: a whole remote inspection from the command line (no browser needed).

    inspection open CASE --enterprise NAME --device ID [--device ID2 ...] --site SITE --polygon "lat,lon;..."
                   [--scheduled ISO8601 --broker URL]   (advance notice: a signed notice the device seals)
    (a case names 1 to 8 devices of one site, the first is the primary; device steps take --on ID to go to
     another of them; start and end are sealed on every device of the case)
    inspection notice CASE --broker URL               (send the advance notice again)
    inspection ready|start CASE --broker URL          (self-test, then inspection.start on the device)
    inspection checkin CASE location|identity_document|power_of_attorney|credentials --broker URL
    inspection mark CASE --note TEXT | snapshot CASE [--note TEXT] | decision CASE continue|shift_to_onsite --reason
    inspection show CASE [--evidence DIR]             (the session; with --evidence: its alerts)
    inspection end CASE --broker URL;  inspection report CASE --evidence DIR --out DIR --broker URL

Exit codes: 0 done, 1 the device refused or the evidence did not verify, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.core.errors import AgentError, CommandError, ConfigError, UplinkError, VerificationError
from agent.customs.i18n.catalog import DEFAULT_REPORT_LANG, REPORT_LANGS
from agent.customs.inspection.audio import audio_items, audio_line
from agent.customs.inspection.geo import parse_polygon
from agent.customs.inspection.model import (
    CHECKIN_STEPS,
    Entry,
    Inspection,
    InspectionStore,
    check_schedule,
    parse_devices,
)
from agent.customs.inspection.service import InspectionService
from agent.customs.inspection.zoom import zoom_items, zoom_line
from agent.customs.keys import DEFAULT_DIR, load_officer

CONSOLE_DATA = Path("console-data")  # the console's [inspections] data default, beside its console.toml


def data_folder(args: argparse.Namespace) -> Path:
    """``--data``; else the ``[inspections] data`` of ``--console-config``; else ``$EVIDENCE_CONSOLE_DATA``;
    else ``./console-data`` — the console's own default when run in the folder of its console.toml."""
    if args.data:
        return Path(args.data)
    if args.console_config:
        from agent.customs.console.config import load_console_config

        return load_console_config(Path(args.console_config)).inspections.data
    return Path(os.environ.get("EVIDENCE_CONSOLE_DATA") or CONSOLE_DATA).expanduser()


def _store(args: argparse.Namespace) -> InspectionStore:
    return InspectionStore(data_folder(args))


def _print_entry(entry: Entry, as_json: bool) -> None:
    if as_json:
        print(entry.model_dump_json())
        return
    state = "" if entry.ok is None else (" ok" if entry.ok else " NOT OK")
    print(f"{entry.kind}{' ' + entry.label if entry.label else ''}:{state} seq {entry.seq} "
          f"record {entry.record_hash or '-'}")
    loc = entry.details.get("location")
    if loc:
        dist = "" if loc["distance_m"] is None else f", {abs(loc['distance_m'])} m from the boundary"
        why = f" ({'; '.join(loc['reasons'])})" if loc["reasons"] else ""
        print(f"  location: {'inside' if loc['inside'] else 'OUTSIDE'} the site{dist}, quality {loc['quality']}{why}")
    if entry.note:
        print(f"  {entry.note}")


def _cmd_open(args: argparse.Namespace) -> int:
    try:
        polygon = parse_polygon(Path(args.polygon[1:]).read_text() if args.polygon.startswith("@") else args.polygon)
        scheduled = None if args.scheduled is None else check_schedule(args.scheduled)
        insp = Inspection(case=args.case, enterprise=args.enterprise, representative=args.representative,
                          devices=parse_devices(args.device), site=args.site,
                          registered_site=args.registered_site or args.site,
                          polygon=polygon, officers=args.officer or [], planned_minutes=args.planned_minutes,
                          scheduled=scheduled)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        msg = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(map(str, msg["loc"])) + ": " + msg["msg"] if msg else str(exc)
        raise ConfigError(f"inspection open: {where}") from None
    if scheduled is not None and not args.broker:
        raise ConfigError("inspection open: --scheduled sends the device an advance notice: give --broker URL "
                          "(and the officer's --keys/--cafile/--cert/--key)")
    _store(args).create(insp)
    print(f"inspection {insp.case} opened for {insp.enterprise} (device{'s' if len(insp.devices) > 1 else ''} "
          f"{', '.join(insp.devices)}, site {insp.site}, "
          f"{len(insp.polygon)}-vertex site polygon, {insp.planned_minutes} min planned"
          + (f", scheduled {scheduled}" if scheduled else "") + ")")
    return _with_device(args, lambda s: s.notice()) if scheduled is not None else 0


def _with_device(args: argparse.Namespace, step: Callable[[InspectionService], Entry | dict[str, Any]]) -> int:
    """Connect as the officer, run one step, print the device-verified result."""
    from agent.customs.cmd_cmd import connect

    store = _store(args)
    insp = store.load(args.case)
    try:
        args.device, args.site = insp.pick(getattr(args, "on", None)), insp.site
    except ValueError as exc:
        raise ConfigError(f"--on: {exc}") from None
    link, client, _site = connect(args)
    try:
        service = InspectionService(store, args.case, client, officer=client.officer.officer_id,
                                    timeout=args.timeout)
        result = step(service)
    except (CommandError, UplinkError, VerificationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        link.close(offline=False)
    if isinstance(result, Entry):
        _print_entry(result, args.json)
        return 0 if result.ok is not False else 1
    print(json.dumps(result, indent=None if args.json else 2, sort_keys=True))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from agent.customs.inspection.report import build_report, next_version

    officer = load_officer(args.keys)
    next_version(_store(args).load(args.case), args.reason)  # a rebuild without a reason stops before connecting

    def step(service: InspectionService) -> dict[str, Any]:
        res = build_report(service, Path(args.evidence), Path(args.out), officer, seal=not args.no_seal,
                           wait_s=args.wait, tsa_url=args.tsa, reason=args.reason,
                           lang=args.lang)
        return {"bundle": str(res.bundle), "pdf": str(res.pdf), "html": str(res.html), "items": res.items,
                "manifest_sha256": res.manifest_sha256, "sealed_seq": res.sealed_seq, "verified": res.verify["ok"],
                "problems": res.verify["problems"], "findings": list(res.findings),
                "seconds": {k: round(v, 3) for k, v in res.seconds.items()}, "version": res.version,
                "supersedes": res.supersedes}

    if args.no_seal:
        result = step(InspectionService(_store(args), args.case, None, officer=officer.officer_id))
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0 if result["verified"] else 1
    rc = _with_device(args, step)
    insp = _store(args).load(args.case)
    return rc if rc else (0 if (insp.report or {}).get("verified") else 1)


def _cmd_show(args: argparse.Namespace) -> int:
    service = InspectionService(_store(args), args.case)
    insp = service.inspection
    out: dict[str, Any] = {"inspection": json.loads(insp.model_dump_json()), "timer": insp.timer(),
                           "checkin_complete": insp.checkin_complete()}
    if args.evidence:
        items = service.items(Path(args.evidence))
        out["alerts"] = service.alerts(Path(args.evidence))
        out["audio"] = audio_items(items)
        out["zooms"] = zoom_items(items)
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    timer = insp.timer()

    def who(device: str | None) -> str:  # the device of a line, in a case of several
        return f" {device or insp.device}" if len(insp.devices) > 1 else ""

    print(f"case {insp.case}: {insp.state}, {insp.enterprise}, device{'s' if len(insp.devices) > 1 else ''} "
          f"{', '.join(insp.devices)}")
    if insp.scheduled:
        n = insp.notice or {}
        delivery = ("not sent" if not n else f"delivered at {n['at']}, sealed by the device at seq {n.get('seq')}"
                    if n.get("delivered") else f"NOT delivered at {n['at']}: {n.get('error')}")
        print(f"  scheduled: {insp.scheduled}; advance notice {delivery}")
    rd = insp.readiness
    print("  self-test: " + ("not run" if rd is None else
                             f"{_RESULT.get(_result_of(rd), '?')} at {rd.get('at')}"
                             + (f" ({', '.join(map(str, rd.get('failed') or rd.get('warnings') or []))})"
                                if rd.get("failed") or rd.get("warnings") else "")))
    if timer["elapsed_s"] is not None:
        over = " (OVER)" if timer["over"] else ""
        print(f"  timer: {timer['elapsed_s'] / 60:.1f} of {insp.planned_minutes} min{over}")
    print(f"  check-in: {', '.join(f'{s} {_mark(insp.checkin.get(s))}' for s in CHECKIN_STEPS)}")
    for e in insp.entries:
        print(f"  {e.at} {e.kind}{' ' + e.label if e.label else ''}{who(e.device)} seq {e.seq}"
              f"{': ' + e.note if e.note else ''}")
    for a in out.get("alerts", []):
        end = ("still ongoing" if a.get("ongoing") else f"ended {a.get('end_at')}"
               + (f", lasted {a['duration_s']:g} s" if a.get("duration_s") is not None else ""))
        print(f"  ALERT{who(a.get('device'))} seq {a['seq']} {a['type']} at {a['at']}, {end}: {a['advice']}")
    for a in out.get("audio", []):
        print(f"  {audio_line(a)}")
    for z in out.get("zooms", []):
        print(f"  {zoom_line(z)}")
    return 0


_RESULT = {"pass": "PASS", "warn": "WARN (passed with warnings)", "fail": "FAIL"}


def _result_of(readiness: dict[str, Any]) -> str:
    """pass, warn or fail (a session written before ``result`` was kept says it through passed/warnings)."""
    if readiness.get("result") in _RESULT:
        return str(readiness["result"])
    return "fail" if not readiness.get("passed") else "warn" if readiness.get("warnings") else "pass"


def _mark(entry: Entry | None) -> str:
    return "-" if entry is None else ("ok" if entry.ok is not False else "FAILED")


def _cmd_list(args: argparse.Namespace) -> int:
    for insp in _store(args).list():
        print(f"{insp.case}\t{insp.state}\t{insp.enterprise}\t{','.join(insp.devices)}\t{insp.created}")
    return 0


def _connection(p: argparse.ArgumentParser, *, case: bool = True, broker_required: bool = True) -> None:
    if case:
        p.add_argument("case", help="case number")
    p.add_argument("--broker", required=broker_required, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--keys", type=Path, default=DEFAULT_DIR, help="officer key directory (default %(default)s)")
    p.add_argument("--cafile", type=Path, help="broker CA (mqtts)")
    p.add_argument("--cert", type=Path, help="officer TLS client certificate (mqtts)")
    p.add_argument("--key", type=Path, help="officer TLS client key (mqtts)")
    p.add_argument("--device-ca", type=Path, help="CA certificate(s) the device's certificate must chain to")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the device's reply")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _on(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on", metavar="DEVICE", help="which of the case's devices (default: its primary, the first)")


def _resolution(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resolution", choices=("stream", "full"), default="stream",
                   help="stream: the video's size (default); full: the camera's full sensor, a readable document")


def register(subparsers: Any) -> None:
    """``evidence-officer inspection open|ready|start|checkin|mark|snapshot|decision|end|report|show|list``."""
    top = subparsers.add_parser("inspection", help="run a remote inspection: check-in, decisions, signed report",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--data", help="session folder (default: the console's: [inspections] data of "
                     "--console-config, else $EVIDENCE_CONSOLE_DATA, else ./console-data as beside console.toml)")
    top.add_argument("--console-config", help="the console's console.toml: share its session folder")
    sub = top.add_subparsers(dest="inspection_command", required=True)
    o = sub.add_parser("open", help="open a session for a case")
    o.add_argument("case", help="case number of the new inspection")
    o.add_argument("--enterprise", required=True, help="the inspected enterprise")
    o.add_argument("--device", required=True, action="append",
                   help="device id; repeat (or A,B) for several cameras of the site, 1 to 8, the first is the primary")
    o.add_argument("--site", required=True, help="the device's site id (MQTT topic level)")
    o.add_argument("--polygon", required=True, help='registered site: "lat,lon;lat,lon;..." or @FILE')
    o.add_argument("--registered-site", help="the site's registered name or address")
    o.add_argument("--representative", help="the enterprise's representative")
    o.add_argument("--officer", action="append", help="officer id (repeatable)")
    o.add_argument("--planned-minutes", type=int, default=25, help="planned duration (default 25)")
    o.add_argument("--scheduled", metavar="ISO8601", help="when the inspection will take place, with a UTC offset "
                   "(e.g. 2026-12-10T09:00:00+08:00): sends the device a signed advance notice (needs --broker)")
    _connection(o, case=False, broker_required=False)
    o.set_defaults(func=_cmd_open)
    n = sub.add_parser("notice", help="send the device the advance notice of the case's scheduled time (again)")
    _connection(n)
    _on(n)
    n.set_defaults(func=lambda a: _with_device(a, lambda s: s.notice(a.on)))
    for name, helptext, fn in (
            ("ready", "request the device self-test and record it", lambda s, a: s.readiness(a.on)),
            ("start", "seal inspection_start on every device of the case", lambda s, a: s.start()),
            ("end", "seal inspection_end on every device of the case", lambda s, a: s.end(a.outcome, a.note))):
        p = sub.add_parser(name, help=helptext)
        _connection(p)
        if name == "ready":
            _on(p)
        if name == "end":
            p.add_argument("--outcome", choices=["completed", "shift_to_onsite", "aborted"], help="how it ended")
            p.add_argument("--note", help="note sealed with the step")
        p.set_defaults(func=lambda a, fn=fn: _with_device(a, lambda s: fn(s, a)))
    c = sub.add_parser("checkin", help="one guided check-in step (a labelled, sealed still)")
    _connection(c)
    c.add_argument("step", choices=CHECKIN_STEPS, help="check-in step: " + ", ".join(CHECKIN_STEPS))
    c.add_argument("--note", help="note sealed with the step")
    _resolution(c)
    _on(c)
    c.set_defaults(func=lambda a: _with_device(a, lambda s: s.checkin(a.step, a.note, a.on, a.resolution)))
    m = sub.add_parser("mark", help="seal a note")
    _connection(m)
    m.add_argument("--note", required=True, help="the officer's note, sealed on the device")
    _on(m)
    m.set_defaults(func=lambda a: _with_device(a, lambda s: s.mark(a.note, a.on)))
    s = sub.add_parser("snapshot", help="seal a still with a note (--resolution full: the full sensor)")
    _connection(s)
    s.add_argument("--note", help="note sealed with the still")
    _resolution(s)
    _on(s)
    s.set_defaults(func=lambda a: _with_device(a, lambda sv: sv.snapshot(a.note, device=a.on,
                                                                         resolution=a.resolution)))
    d = sub.add_parser("decision", help='seal "continue" or "shift_to_onsite" with a reason')
    _connection(d)
    d.add_argument("decision", choices=["continue", "shift_to_onsite"], help="continue remotely or shift to on-site")
    d.add_argument("--reason", required=True, help="why (sealed with the decision)")
    _on(d)
    d.set_defaults(func=lambda a: _with_device(a, lambda sv: sv.decision(a.decision, a.reason, a.on)))
    r = sub.add_parser("report", help="build, sign and seal the report; write the verified evidence bundle")
    _connection(r)
    r.set_defaults(broker=None)
    for action in r._actions:
        if action.dest == "broker":
            action.required = False
    r.add_argument("--evidence", required=True, type=Path,
                   help="the ingest output folder (evidence-officer ingest --out)")
    r.add_argument("--out", required=True, type=Path, help="where the report files and the bundle go")
    r.add_argument("--no-seal", action="store_true",
                   help="do not ask the device to seal the report's hash (a draft: the bundle will not verify, "
                        "the device's seal is required; exit 1)")
    r.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the evidence to arrive")
    r.add_argument("--tsa", metavar="URL", help="RFC 3161 time-stamp authority for the PDF's PAdES signature "
                   "(without it the signature is dated by this machine's clock only)")
    r.add_argument("--reason", help="why the report is built again (required when the case already has one: "
                                    "the new version supersedes it; both are kept and sealed)")
    r.add_argument("--lang", choices=REPORT_LANGS, default=DEFAULT_REPORT_LANG,
                   help="the report's language: zh-en (Chinese, English beside or below each heading and label; "
                        "the default), zh or en")
    r.set_defaults(func=_cmd_report)
    w = sub.add_parser("show", help="the session, its timer and (with --evidence) the alerts")
    w.add_argument("case", help="case number")
    w.add_argument("--evidence", type=Path, help="the ingest output folder, to list alerts")
    w.add_argument("--json", action="store_true", help="machine-readable output")
    w.set_defaults(func=_cmd_show)
    sub.add_parser("list", help="all sessions").set_defaults(func=_cmd_list)


__all__ = ["AgentError", "register"]
