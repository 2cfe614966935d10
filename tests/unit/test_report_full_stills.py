"""A full-resolution check-in still in the signed report: a landscape page of its own, every sensor pixel
embedded, its pixel size stated; the timeline says "full resolution"; the bundle verifies (pixel size checked)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from agent.capture.base import CaptureSettings
from agent.capture.pixels import encode_jpeg
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import SystemClock
from agent.customs.inspection.report import verify_bundle
from tests.support.report_bundle import build, seal_inspection

SENSOR = (4608, 2592)


def sensor_jpeg() -> bytes:
    """What the synthetic camera's full-resolution still looks like: its 4608x2592 sensor with the document card."""
    cam = SyntheticBackend(CaptureSettings(width=1280, height=720, realtime=False, sensor_width=SENSOR[0],
                                           sensor_height=SENSOR[1]), SystemClock())
    with cam:
        frame = cam.full_frame(cam.read())
    assert frame is not None and (frame.width, frame.height) == SENSOR
    return encode_jpeg(frame, 90)


@pytest.mark.skipif(subprocess.run(["which", "pdftotext"], capture_output=True).returncode != 0,
                    reason="poppler-utils (pdftotext) not installed")
def test_full_resolution_still_gets_a_page_of_its_own_at_full_size(tmp_path: Path) -> None:
    fields = {"resolution": "full", "width": SENSOR[0], "height": SENSOR[1],
              "sensor": {"width": SENSOR[0], "height": SENSOR[1]}, "region": None}
    built = seal_inspection(tmp_path, document=(sensor_jpeg(), fields),
                            hostile={"note": "identity card held up by the representative, a metre from the camera"})
    try:
        res = build(built, tmp_path / "reports")
    finally:
        built.close()
    assert res.verify["ok"], res.verify["problems"]
    bundle = Path(res.bundle)
    with zipfile.ZipFile(bundle) as z:
        html = z.read("report/report.html").decode()
        pdf = z.read("report/report.pdf")
    assert "Full-resolution stills" in html and 'class="full-tall"' in html  # 16:9 is sized by the page height
    assert "4608 × 2592 pixels, full resolution" in html and "embedded at 4608 × 2592" in html
    assert "4608 × 2592 像素，全分辨率" in html  # bilingual (zh-en), like every word of the report
    assert html.count('<span class="en" lang="en">full resolution</span></b> 4608 × 2592') == 1  # the timeline
    assert "identity document, still seq" not in html  # printed once, on its own page, not again at 1600 px
    assert "Location of the registered site, still seq" in html  # a stream still stays in the check-in section
    (tmp_path / "report.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    pages = text.split("\f")
    number = next(n for n, p in enumerate(pages, 1) if "Full-resolution stills" in p)
    assert "4608 × 2592" in pages[number - 1]
    images = subprocess.run(["pdfimages", "-list", str(tmp_path / "report.pdf")], capture_output=True, text=True,
                            check=True).stdout
    full = [line.split() for line in images.splitlines()[2:] if line.split()[3:5] == ["4608", "2592"]]
    assert [int(row[0]) for row in full] == [number], images  # every pixel, on the page with its caption
    report = verify_bundle(bundle)
    assert {"seq": res_seq(report), "width": 4608, "height": 2592, "resolution": "full"} in \
        report.sections["stills"]


def res_seq(report: object) -> int:
    return next(s["seq"] for s in report.sections["stills"] if s["resolution"] == "full")  # type: ignore[attr-defined]

