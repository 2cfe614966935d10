"""The report PDF as a legal document: the officer signs (PAdES B-T), the enterprise countersigns through the
real ``evidence-agent countersign``, and pyHanko's own validator (not project code) accepts both signatures."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from agent.core.errors import SigningError
from agent.customs.legal.officer import sign_report_pdf
from agent.customs.legal.page import signature_page_html
from agent.device.cli import main
from agent.pades.check import Signer, signed_bytes
from tests.support import pades
from tests.support.tsa_server import LocalTsa


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    t = LocalTsa()
    yield t
    t.close()


def _vc(*certs: object) -> ValidationContext:
    return ValidationContext(trust_roots=[asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))  # type: ignore[attr-defined]
                                          for c in certs], allow_fetching=False)


def test_officer_signs_enterprise_countersigns_and_pyhanko_validates_both(tmp_path: Path, tsa: LocalTsa,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "officer"), pades.enterprise(tmp_path / "enterprise")
    signed = sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca], tsa_url=tsa.url)
    (tmp_path / "report.pdf").write_bytes(signed)
    out = tmp_path / "countersigned.pdf"
    done = pades.evidence_agent("countersign", str(tmp_path / "report.pdf"), "--key", str(ent.key_file),
                                "--cert", str(ent.cert_file), "--chain", str(ent.ca_file), "--tsa", tsa.url,
                                "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(signed)  # an incremental update: the officer's revision is kept byte for byte
    assert signed_bytes(data) == signed  # what the officer-signed report manifest's SHA-256 is compared with

    sigs = PdfFileReader(io.BytesIO(data)).embedded_signatures
    assert [s.field_name for s in sigs] == ["OfficerSignature", "EnterpriseSignature"]
    officer_st = validate_pdf_signature(sigs[0], _vc(off.ca), ts_validation_context=_vc(tsa.ca))
    enterprise_st = validate_pdf_signature(sigs[1], _vc(ent.ca), ts_validation_context=_vc(tsa.ca))
    for st in (officer_st, enterprise_st):
        assert st.bottom_line, st.pretty_print_details()
        assert st.timestamp_validity is not None and st.timestamp_validity.trusted
    assert officer_st.docmdp_ok and officer_st.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    assert enterprise_st.coverage == SignatureCoverageLevel.ENTIRE_FILE
    subject = officer_st.signing_cert.subject.native
    assert subject["name"] == pades.LEGAL_NAME and subject["serial_number"] == pades.BADGE
    assert str(sigs[0].sig_object["/Name"]) == pades.LEGAL_NAME
    pages = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(out), "-"], capture_output=True, text=True,
                           check=True).stdout  # the signature page the officer's revision appended
    assert "海关官员 Customs officer" in pages and f"{pades.LEGAL_NAME} · 警号 Badge {pades.BADGE}" in pages

    code = main(["verify-pdf", str(out), "--officer-ca", str(off.ca_file), "--enterprise-ca", str(ent.ca_file),
                 "--tsa-ca", str(tsa.ca_file)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"{pades.LEGAL_NAME} (badge {pades.BADGE}" in text and "Green Fields Ltd" in text
    assert main(["verify-pdf", str(out), "--officer-ca", str(off.ca_file), "--enterprise-ca", str(ent.ca_file)]) == 3
    assert "timestamp's TSA does not chain to a --tsa-ca" in capsys.readouterr().out


def test_a_dispute_note_is_signed_instead_and_the_officer_signature_stays_valid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "officer"), pades.enterprise(tmp_path / "enterprise")
    (tmp_path / "report.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    note = tmp_path / "note.txt"
    note.write_text("We dispute the count: 42 bags, not 40.\nThe second store was not shown.\n")
    out = tmp_path / "disputed.pdf"
    assert main(["countersign", str(tmp_path / "report.pdf"), "--key", str(ent.key_file), "--cert",
                 str(ent.cert_file), "--chain", str(ent.ca_file), "--dispute-file", str(note),
                 "--out", str(out)]) == 0
    sigs = PdfFileReader(io.BytesIO(out.read_bytes())).embedded_signatures
    assert validate_pdf_signature(sigs[0], _vc(off.ca)).bottom_line
    assert validate_pdf_signature(sigs[1], _vc(ent.ca)).bottom_line
    assert "42 bags, not 40" in str(sigs[1].sig_object["/Reason"])
    capsys.readouterr()
    code = main(["verify-pdf", str(out), "--officer-ca", str(off.ca_file), "--enterprise-ca", str(ent.ca_file),
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["dispute_note"].startswith("We dispute the count: 42 bags, not 40.\nThe second")


def test_countersigning_twice_or_an_empty_note_is_refused_in_one_line(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "officer"), pades.enterprise(tmp_path / "enterprise")
    (tmp_path / "report.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    base = ["countersign", "--key", str(ent.key_file), "--cert", str(ent.cert_file)]
    assert main([*base, str(tmp_path / "report.pdf"), "--out", str(tmp_path / "once.pdf")]) == 0
    assert main([*base, str(tmp_path / "once.pdf"), "--out", str(tmp_path / "twice.pdf")]) == 1
    assert main([*base, str(tmp_path / "report.pdf"), "--dispute", "  ", "--out", str(tmp_path / "x.pdf")]) == 2
    assert main([*base, str(tmp_path / "note.txt"), "--out", str(tmp_path / "y.pdf")]) == 2
    err = capsys.readouterr().err
    assert "already signed" in err and "dispute note is empty" in err and "no such PDF" in err
    assert "Traceback" not in err and not (tmp_path / "twice.pdf").exists()


def test_the_signature_page_escapes_certificate_names_and_a_dead_tsa_is_one_error(tmp_path: Path) -> None:
    off = pades.officer(tmp_path / "officer", legal_name="<img src=http://x/> 王小明")
    page = signature_page_html(Signer.of(off.cert), title="C-1 <script>")
    assert "<img" not in page and "&lt;img src=http://x/&gt; 王小明" in page and "&lt;script&gt;" in page
    with pytest.raises(SigningError, match="did not time-stamp"):
        sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca], tsa_url="http://127.0.0.1:9/tsa")


def test_the_whole_chain_through_the_command_lines(tmp_path: Path, tsa: LocalTsa,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`evidence-officer ca issue-officer` → `evidence-officer sign-pdf` → `evidence-agent countersign` →
    `evidence-agent verify-pdf`, and pyHanko's validator on the result."""
    from agent.customs.cli import main as officer_main

    ca = tmp_path / "customs-ca"
    assert officer_main(["ca", "init", "--dir", str(ca), "--org", "Customs Authority"]) == 0
    assert officer_main(["ca", "issue-officer", "--dir", str(ca), "officer-alice", "--legal-name", "Alice Martin",
                         "--badge", "B-0417", "--out", str(tmp_path / "officer-alice")]) == 0
    (tmp_path / "report.pdf").write_bytes(pades.report_pdf())
    assert officer_main(["sign-pdf", str(tmp_path / "report.pdf"), "--keys", str(tmp_path / "officer-alice"),
                         "--chain", str(ca / "ca.pem"), "--tsa", tsa.url, "--title", "C-2026/0042",
                         "--out", str(tmp_path / "signed.pdf")]) == 0
    ent = pades.enterprise(tmp_path / "enterprise")
    assert main(["countersign", str(tmp_path / "signed.pdf"), "--key", str(ent.key_file), "--cert",
                 str(ent.cert_file), "--tsa", tsa.url, "--out", str(tmp_path / "final.pdf")]) == 0
    capsys.readouterr()
    assert main(["verify-pdf", str(tmp_path / "final.pdf"), "--officer-ca", str(ca / "ca.pem"), "--enterprise-ca",
                 str(ent.ca_file), "--tsa-ca", str(tsa.ca_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(s["role"], s["signer"]["legal_name"], s["signer"]["badge"]) for s in doc["signatures"]] == [
        ("officer", "Alice Martin", "B-0417"), ("enterprise", None, None)]
    from cryptography import x509 as cx509

    customs_root = cx509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())
    sigs = PdfFileReader(io.BytesIO((tmp_path / "final.pdf").read_bytes())).embedded_signatures
    assert validate_pdf_signature(sigs[0], _vc(customs_root), ts_validation_context=_vc(tsa.ca)).bottom_line
