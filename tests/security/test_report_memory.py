"""`evidence-agent verify` and `evidence-officer inspection report` in bounded memory on hostile input.

Each runs as a real process under RLIMIT_AS = 512 MiB (tests/support/bounded.py). Before this work an
~11 MB zip of many 16 MiB members took 1.72 GB (every ``report/`` member and every sidecar held at once),
30 symbolic links under ``report/`` to one 200 MiB file took 6.2 GB (read through the links), and a PNG
bomb still failed the report build.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bounded import agent, run_bounded, sparse_file, zip_of_copies
from tests.support.report_bundle import CASE, Built, build, png_bomb, seal_inspection


def _ok_exit(res: object) -> None:
    assert "Traceback" not in res.stderr and "MemoryError" not in res.stderr, res.stderr[-3000:]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def bomb_inspection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Built, Path]]:
    root = tmp_path_factory.mktemp("bomb")
    built = seal_inspection(root, bomb=png_bomb())
    res = build(built, root / "out")
    built.close()
    yield built, res.bundle


@pytest.mark.parametrize("prefix", ["report/junk-{:03d}.pdf", "items/000000/{:012d}.event.rec",
                                    "log/anchors/{:03d}.json", "log/checkpoints/{:012d}.note"])
def test_zip_of_many_16_mib_members(bomb_inspection: tuple[Built, Path], tmp_path: Path, prefix: str) -> None:
    """Beside a genuine report bundle's members (so every checker runs), 130 members of 16 MiB each."""
    _built, genuine = bomb_inspection
    with zipfile.ZipFile(genuine) as z:
        first = {n: z.read(n) for n in z.namelist()}
    bundle = tmp_path / "many.zip"
    zip_of_copies(bundle, [prefix.format(i) for i in range(130)], 16 << 20, first=first)
    assert bundle.stat().st_size < 20 << 20
    res = run_bounded(agent("verify", str(bundle), "--json"))
    _ok_exit(res)
    assert res.returncode == 1, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["problems"]
    print(f"verify many-16MiB ({prefix}): peak RSS {res.peak_rss_mib:.0f} MiB")


def test_symlinks_under_report_to_a_large_file(bomb_inspection: tuple[Built, Path], tmp_path: Path) -> None:
    _built, bundle = bomb_inspection
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(folder)
    big = sparse_file(tmp_path / "big.bin", 200 << 20)
    for i in range(30):
        (folder / "report" / f"extra-{i}.pdf").symlink_to(big)
    (folder / "report" / "report.pdf").unlink()
    (folder / "report" / "report.pdf").symlink_to(big)
    res = run_bounded(agent("verify", str(folder), "--json"))
    _ok_exit(res)
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and "symbolic link" in json.dumps(doc["problems"])
    print(f"verify 30 symlinks to 200 MiB: peak RSS {res.peak_rss_mib:.0f} MiB")


def test_png_bomb_still_verify_and_report_build(bomb_inspection: tuple[Built, Path], tmp_path: Path) -> None:
    built, bundle = bomb_inspection
    res = run_bounded(agent("verify", str(bundle), "--ca", str(built.device_ca), "--officer-ca",
                            str(built.officer_ca), "--json"))
    _ok_exit(res)
    assert res.returncode == 0, res.stdout[-3000:]
    print(f"verify PNG-bomb bundle: peak RSS {res.peak_rss_mib:.0f} MiB")
    out = tmp_path / "out"
    rep = run_bounded([sys.executable, "-m", "agent.customs.cli", "inspection", "--data", str(built.data), "report",
                       CASE, "--evidence", str(built.evidence), "--out", str(out), "--keys", str(built.officer_keys),
                       "--no-seal", "--wait", "0", "--reason", "built again through the CLI"])
    _ok_exit(rep)
    doc = json.loads(rep.stdout)  # the fixture built version 1: this is version 2
    assert Path(doc["pdf"]).read_bytes().startswith(b"%PDF")
    assert f"still seq {built.bomb_seq} could not be rendered" in Path(doc["html"]).read_text()
    print(f"report build with a PNG bomb: peak RSS {rep.peak_rss_mib:.0f} MiB")
    shutil.rmtree(out)


def test_report_build_with_symlinked_and_huge_media(tmp_path: Path) -> None:
    """Stills in the ingest folder replaced by symlinks to a 200 MiB file: the build reads nothing through
    them (the stills count as not received, the bundle does not carry them) and stays in bounded memory."""
    built = seal_inspection(tmp_path)
    built.close()
    big = sparse_file(tmp_path / "big.bin", 200 << 20)
    stills = sorted((built.evidence / "cam-insp" / "items").rglob("*.still.jpg"))
    for still in stills:
        still.unlink()
        still.symlink_to(big)
    out = tmp_path / "out"
    rep = run_bounded([sys.executable, "-m", "agent.customs.cli", "inspection", "--data", str(built.data), "report",
                       CASE, "--evidence", str(built.evidence), "--out", str(out), "--keys", str(built.officer_keys),
                       "--no-seal", "--wait", "0"])
    _ok_exit(rep)
    doc = json.loads(rep.stdout)
    assert "media not received" in Path(doc["html"]).read_text()
    assert Path(doc["bundle"]).stat().st_size < 10 << 20
    assert any("missing" in p["problem"] for p in doc["problems"])
    print(f"report build with symlinked stills: peak RSS {rep.peak_rss_mib:.0f} MiB")
