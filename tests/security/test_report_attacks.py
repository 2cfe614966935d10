"""Attacks on the signed inspection report, through the real `evidence-agent verify` and
`evidence-officer inspection report` processes.

Before this work: device strings reached the report HTML unescaped and WeasyPrint fetched any URL, so a
device's GPS reply embedded the officer's key file as a PDF attachment, fetched an outside URL and hid the
alerts with ``<style>``; forged, truncated and re-ordered report bundles verified with exit 0 (a manifest
signed by a self-made "officer" certificate or by the device's own key, the seal record removed, the tail
or the head dropped, a duplicate ``report/report.pdf``); a PNG bomb still failed the whole build.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.customs.inspection.model import InspectionStore
from agent.signing.report import sign_report
from tests.support.fleet import agent_cli
from tests.support.helpers import REPO
from tests.support.report_bundle import (
    CASE,
    DEVICE,
    OFFICER,
    Built,
    build,
    manifest_of,
    officer_report,
    officer_with_ca,
    rewrite,
    seal_inspection,
)

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def verify(bundle: Path, built: Built, *extra: str, officer_ca: bool = True) -> tuple[int, dict[str, Any]]:
    args = [str(bundle), "--ca", str(built.device_ca), *extra, "--json"]
    if officer_ca:
        args += ["--officer-ca", str(built.officer_ca)]
    res = agent_cli("verify", *args)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    doc: dict[str, Any] = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {"problems": [],
                                                                                               "stderr": res.stderr}
    return res.returncode, doc


def problems(doc: dict[str, Any]) -> str:
    return json.dumps(doc.get("problems")) + str(doc.get("stderr", ""))


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Built, Path]]:
    root = tmp_path_factory.mktemp("report")
    built = seal_inspection(root)
    res = build(built, root / "out")
    built.close()
    yield built, res.bundle


def test_genuine_report_is_trusted_only_with_both_anchors(genuine: tuple[Built, Path]) -> None:
    built, bundle = genuine
    rc, doc = verify(bundle, built)
    assert rc == 0, problems(doc)
    assert doc["report"]["officer_trusted"] is True and doc["report"]["signature_valid"]
    rc, doc = verify(bundle, built, officer_ca=False)
    assert rc == 3 and doc["ok"] is True and doc["report"]["officer_trusted"] is False  # before: exit 0
    assert any("--officer-ca" in u["why"] for u in doc["untrusted"])


def test_manifest_signed_by_a_self_made_officer_certificate(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = genuine
    forger, _ = officer_with_ca(tmp_path / "forger", OFFICER)  # same CN, OU and organisation, another CA

    def change(name: str, data: bytes) -> bytes:
        if name != "report/manifest.json":
            return data
        body = json.loads(data)["body"]
        body["outcome"] = "completed"
        return sign_report(body, forger.private_key, forger.cert, forger.chain)

    rc, doc = verify(rewrite(bundle, tmp_path / "forged.zip", change), built)
    assert rc == 1 and "does not lead to a trusted officer CA" in problems(doc)


def test_manifest_signed_by_the_device_key(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = genuine
    ident = built.identity

    def change(name: str, data: bytes) -> bytes:
        if name != "report/manifest.json":
            return data
        body = json.loads(data)["body"]
        body["officer"] = DEVICE
        return sign_report(body, ident.private_key, ident.cert, ident.chain[1:])

    # the device CA given as officer CA too: a device certificate still is no officer's
    for officer_ca in (built.officer_ca, built.device_ca):
        res = agent_cli("verify", str(rewrite(bundle, tmp_path / "device.zip", change)), "--ca",
                        str(built.device_ca), "--officer-ca", str(officer_ca), "--json")
        doc = json.loads(res.stdout)
        assert res.returncode == 1, problems(doc)
        assert "officer" in problems(doc)


def _seqs(bundle: Path, kind: str) -> list[str]:
    return [n for n in zipfile.ZipFile(bundle).namelist() if n.endswith(f".{kind}.rec")]


def test_seal_record_removed(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = genuine
    seal = _seqs(bundle, "report")
    assert seal
    rc, doc = verify(rewrite(bundle, tmp_path / "noseal.zip", lambda n, d: None if n in seal else d), built)
    assert rc == 1 and "no device record seals this report" in problems(doc)  # before: a warning, exit 0


def test_tail_dropped(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = genuine
    tail = [*_seqs(bundle, "report"), *_seqs(bundle, "inspection_end"), _seqs(bundle, "decision")[-1]]
    rc, doc = verify(rewrite(bundle, tmp_path / "tail.zip", lambda n, d: None if n in tail else d), built)
    assert rc == 1, problems(doc)
    assert "no device record seals this report" in problems(doc)


def test_head_dropped_with_first_seq_edited(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = genuine
    head = _seqs(bundle, "inspection_start")[0]
    first = int(head.rsplit("/", 1)[1][:12])

    def change(name: str, data: bytes) -> bytes | None:
        if name.rsplit("/", 1)[-1].startswith(f"{first:012d}."):
            return None
        if name == "MANIFEST.json":
            m = json.loads(data)
            m["first_seq"] = first + 1
            return json.dumps(m).encode()
        return data

    rc, doc = verify(rewrite(bundle, tmp_path / "head.zip", change), built)
    assert rc == 1, problems(doc)
    assert f"seq {first}" in problems(doc)


@pytest.mark.parametrize("name", ["report/report.pdf", "report/Report.pdf"])
def test_duplicate_or_case_colliding_report_member(genuine: tuple[Built, Path], tmp_path: Path, name: str) -> None:
    built, bundle = genuine
    forged = b"%PDF-1.7 forged report: inspection completed, no findings\n%%EOF\n"
    out = rewrite(bundle, tmp_path / "dup.zip", lambda n, d: d, first=[(name, forged)])  # unzip takes the first
    rc, doc = verify(out, built)
    assert rc == 1 and ("duplicate" in problems(doc) or "collid" in problems(doc)), problems(doc)


def test_report_outside_the_manifest_run_is_refused(genuine: tuple[Built, Path], tmp_path: Path) -> None:
    """An item in the bundle that the signed run does not cover (a seq before the range) is a problem."""
    built, bundle = genuine
    man = manifest_of(bundle)["body"]
    assert man["range"]["count"] == len(man["items"]) == man["range"]["last_seq"] - man["range"]["first_seq"] + 1
    rc, doc = verify(bundle, built)
    assert rc == 0, problems(doc)


# --- what the report renders ------------------------------------------------------------------------------------

class _Hits(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b".bad { display: none }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def outside() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hits.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)


def hostile_strings(key_file: Path, url: str) -> dict[str, Any]:
    return {"gps": {"fix": f'3d<a rel="attachment" href="file://{key_file}">key</a>'
                           '<a rel="attachment" href="file:///proc/self/environ">env</a>',
                    "lat": f'<link rel="stylesheet" href="{url}/x.css"><img src="{url}/pixel.png">',
                    "lon": "<style>.bad, .warn, h2 { display: none !important }</style>121.47"},
            "note": "</td></tr></table><h1>ALL CLEAR</h1>", "representative": "<b>Li</b> & <i>Wei</i>"}


@pytest.mark.parametrize("lang", ["zh-en", "zh", "en"])
def test_hostile_device_strings_render_as_text(tmp_path: Path, outside: str, lang: str) -> None:
    """In every report language: the device's strings are text (escaped into the catalogue's words too)."""
    built = seal_inspection(tmp_path)
    built.close()
    key_file = built.officer_keys / "officer.key"
    # the session stores what the device answered: hostile strings in its signed snapshot reply
    session = InspectionStore(built.data).path(CASE)
    doc = json.loads(session.read_text())
    for step in doc["checkin"].values():
        step["details"]["gps"].update(hostile_strings(key_file, outside)["gps"])
        step["note"] = "</td></tr></table><h1>ALL CLEAR</h1>"
    doc["representative"] = "<b>Li</b> & <i>Wei</i>"
    session.write_text(json.dumps(doc))
    res = officer_report(built, tmp_path / "out", "--lang", lang)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    out = json.loads(res.stdout)
    pdf = Path(out["pdf"])
    assert _Hits.hits == [], _Hits.hits  # before: the stylesheet and the image were fetched
    embedded = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True).stdout
    assert "0 embedded files" in embedded, embedded  # before: officer.key and /proc/self/environ
    assert b"PRIVATE KEY" not in pdf.read_bytes()
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
    flat = " ".join(text.split())
    assert 'rel="attachment"' in flat and "<style>" in flat and "ALL CLEAR" in flat  # as text
    assert "(too_dark)" in flat  # before: hidden by the style
    if lang != "zh":
        assert "ALERT" in flat and "Too dark" in flat and "Alerts and decisions" in flat
    if lang != "en":
        assert "警报" in flat and "画面过暗" in flat and "警报与决定" in flat
    html = Path(out["html"]).read_text()
    assert "<style>.bad" not in html and "&lt;style&gt;" in html and "<h1>ALL CLEAR" not in html


def test_fuzzed_report_members_through_the_cli(genuine: tuple[Built, Path],
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hypothesis mutates the manifest (or a rendered file) of a genuine report bundle: always a named
    problem (exit 1), never a traceback or an exit 0."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    built, bundle = genuine
    members = ["report/manifest.json", "report/report.html"]

    @settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(members), cut=st.integers(0, 3000), junk=st.binary(min_size=1, max_size=48))
    def run(name: str, cut: int, junk: bytes) -> None:
        def change(n: str, d: bytes) -> bytes:
            if n != name:
                return d
            at = cut % (len(d) + 1)
            out = d[:at] + junk + d[at + len(junk):]
            return out if out != d else d + b" "
        target = rewrite(bundle, tmp_path_factory.mktemp("fuzz") / "b.zip", change)
        rc, doc = verify(target, built)
        assert rc == 1, (name, doc.get("problems"))
        assert doc["problems"]

    run()
