"""Attacks on the signed report PDF: content changed after the officer signed, a countersignature from outside
the enterprise CA, an officer signature from a self-made certificate carrying the officer's name."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from agent.customs.legal.officer import sign_report_pdf
from agent.device.cli import main
from tests.support import pades


def _verify(pdf: Path, off: pades.Party, ent: pades.Party, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify-pdf", str(pdf), "--officer-ca", str(off.ca_file), "--enterprise-ca", str(ent.ca_file)])
    return code, capsys.readouterr().out


def _countersign(src: Path, ent: pades.Party, out: Path) -> None:
    assert main(["countersign", str(src), "--key", str(ent.key_file), "--cert", str(ent.cert_file),
                 "--out", str(out)]) == 0


def _rewrite_page(pdf: bytes, text: bytes) -> bytes:
    """An incremental update that replaces the first page's content: what a forger appends to a signed file."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = w.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 700 Td (" + text + b") Tj ET"))
    w.mark_update(page_ref)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_content_changed_after_the_officer_signed_is_a_problem(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    signed = sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca])
    (tmp_path / "forged.pdf").write_bytes(_rewrite_page(signed, b"Outcome: no findings"))
    _countersign(tmp_path / "forged.pdf", ent, tmp_path / "countersigned.pdf")  # the enterprise signs the forgery
    code, out = _verify(tmp_path / "countersigned.pdf", off, ent, capsys)
    assert code == 1, out
    assert "officer [OfficerSignature]" in out and "changed after this signature" in out


def test_content_changed_after_the_countersignature_is_a_problem(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    _countersign(tmp_path / "r.pdf", ent, tmp_path / "c.pdf")
    (tmp_path / "late.pdf").write_bytes(_rewrite_page((tmp_path / "c.pdf").read_bytes(), b"Outcome: cleared"))
    code, out = _verify(tmp_path / "late.pdf", off, ent, capsys)
    assert code == 1 and out.count("changed after this signature") == 2, out


def test_a_countersignature_outside_the_enterprise_ca_is_not_trusted(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    impostor = pades.enterprise(tmp_path / "i")  # same organisation name, its own CA
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    _countersign(tmp_path / "r.pdf", impostor, tmp_path / "c.pdf")
    code, out = _verify(tmp_path / "c.pdf", off, ent, capsys)
    assert code == 3, out
    assert "NOT TRUSTED: the signer's certificate does not chain to the enterprise CA" in out


def test_an_officer_signature_from_a_self_made_certificate_is_not_trusted(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    fake = pades.self_made_officer(tmp_path / "f")  # the officer's legal name and badge, the attacker's CA
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), fake.key, fake.cert, [fake.ca]))
    _countersign(tmp_path / "r.pdf", ent, tmp_path / "c.pdf")
    code, out = _verify(tmp_path / "c.pdf", off, ent, capsys)
    assert code == 3, out
    assert "does not chain to the officer CA" in out and pades.LEGAL_NAME in out


def test_an_unsigned_or_missing_countersignature_and_a_non_pdf(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    (tmp_path / "plain.pdf").write_bytes(pades.report_pdf())
    code, out = _verify(tmp_path / "plain.pdf", off, ent, capsys)
    assert code == 1 and "no signature" in out
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    code, out = _verify(tmp_path / "r.pdf", off, ent, capsys)
    assert code == 1 and "EnterpriseSignature field is not signed" in out
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.7\nnot really")
    code, out = _verify(tmp_path / "junk.pdf", off, ent, capsys)
    assert code == 1 and "FAILED" in out


def test_each_role_is_checked_against_its_own_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A customs certificate in the enterprise's field (the officer 'countersigning' for the enterprise) is not
    trusted, though it chains to a CA given on the command line."""
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), off.key, off.cert, [off.ca]))
    _countersign(tmp_path / "r.pdf", off, tmp_path / "c.pdf")
    code, out = _verify(tmp_path / "c.pdf", off, ent, capsys)
    assert code == 3 and "does not chain to the enterprise CA" in out, out


def test_a_device_key_of_the_customs_ca_cannot_sign_as_the_officer(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A stolen device key chains to the customs CA too; the officer field needs an officer certificate."""
    off, ent = pades.officer(tmp_path / "o"), pades.enterprise(tmp_path / "e")
    cam = pades.device_of(off, tmp_path / "cam")
    (tmp_path / "r.pdf").write_bytes(sign_report_pdf(pades.report_pdf(), cam.key, cam.cert, [cam.ca]))
    _countersign(tmp_path / "r.pdf", ent, tmp_path / "c.pdf")
    code, out = _verify(tmp_path / "c.pdf", off, ent, capsys)
    assert code == 3 and "not an officer certificate" in out, out


def test_a_revoked_officer_key_signs_no_new_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After `ca revoke` + `ca crl`, a report signed with the stolen key (time-stamped after the revocation, or
    not time-stamped at all) is not trusted; one time-stamped before the revocation stays trusted."""
    import datetime as dt
    import time

    from agent.customs.cli import main as officer_main
    from tests.support.tsa_server import LocalTsa

    ca, keys = tmp_path / "customs-ca", tmp_path / "officer-alice"
    assert officer_main(["ca", "init", "--dir", str(ca), "--org", "Customs Authority"]) == 0
    assert officer_main(["ca", "issue-officer", "--dir", str(ca), "officer-alice", "--legal-name", "Alice Martin",
                         "--badge", "B-0417", "--out", str(keys)]) == 0
    tsa = LocalTsa(tmp_path / "tsa")
    try:
        def sign(name: str, tsa_url: str | None) -> Path:
            args = ["sign-pdf", str(tmp_path / "report.pdf"), "--keys", str(keys), "--out", str(tmp_path / name)]
            assert officer_main(args + (["--tsa", tsa_url] if tsa_url else [])) == 0
            return tmp_path / name

        (tmp_path / "report.pdf").write_bytes(pades.report_pdf())
        before = sign("before.pdf", tsa.url)
        signed_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        while dt.datetime.now(dt.UTC).replace(microsecond=0) <= signed_at:  # the revocation is a later second
            time.sleep(0.05)
        assert officer_main(["ca", "revoke", "--dir", str(ca), "officer-alice", "--reason", "key_compromise"]) == 0
        assert officer_main(["ca", "crl", "--dir", str(ca)]) == 0
        after, undated = sign("after.pdf", tsa.url), sign("undated.pdf", None)
    finally:
        tsa.close()
    base = ["--officer-ca", str(ca / "ca.pem"), "--tsa-ca", str(tsa.ca_file), "--crl", str(ca / "crl.pem")]
    capsys.readouterr()
    assert main(["verify-pdf", str(before), *base]) == 0, capsys.readouterr().out
    for pdf in (after, undated):
        assert main(["verify-pdf", str(pdf), *base]) == 3
        assert "revoked from" in capsys.readouterr().out
    assert main(["verify-pdf", str(before), "--officer-ca", str(ca / "ca.pem"),
                 "--crl", str(tmp_path / "tsa" / "ca.pem")]) == 2  # not a CRL of a CA given: a usage error
