"""The signed inspection report that travels inside an evidence bundle, and its check.

A bundle may hold ``report/``: the rendered report (``report.pdf``, ``report.html``) and
``report/manifest.json``, an officer-signed envelope ``{"body": {...}, "alg", "key_id", "sig", "x5c"}``.
The body (``typ`` ``evidence-report/2``) names the case, the device, the officer, the SHA-256 and size of
each rendered file, the exact run of evidence items the report covers (``range``: first seq = the
``inspection_start`` record, last seq = ``inspection_end``, and their count) and every one of those items
(seq, kind, record hash, media hash). The signature is ECDSA P-256 over the RFC 8785 bytes of the body,
like a device record, so ``openssl dgst`` can check it too; ``x5c`` holds the officer's certificate and
the CAs above it. The device seals the SHA-256 of ``manifest.json`` (a ``report`` record after
``inspection_end``), so the chain itself vouches that this report existed when that record was sealed.
A case has one report in numbered versions: ``version`` (1, 2, ...; absent = 1), ``supersedes`` (the SHA-256
of the previous version's manifest, ``null`` for version 1) and ``reason`` (why it was built again). The
previous version's seal lies between ``inspection_end`` and this version's seal; when it is not there the
check warns (a draft that was never sealed) but does not fail.

``report_checker()`` plugs into :func:`agent.signing.verify.check`. A report is accepted only as far as
it can be proved: the signature must hold; the signer's certificate must be an officer's (subject OU
``evidence-officer``, CN = the manifest's officer, not the device's key) and chain (cryptography's X.509
verification) to an officer CA the caller gave, else the report part is *not trusted*; the device's seal
is required; the evidence must hold exactly the signed run plus the items up to the seal (nothing before,
nothing after, nothing missing); every report file must match its hash (streamed, never held), and no
file outside the manifest may sit in ``report/``. Unsigned files (the bundle's MANIFEST.json) are never
taken as proof of anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.core.errors import SigningError, VerificationError
from agent.signing.keys import key_id_of, sign_with, verify_with
from agent.signing.records import canonical
from agent.signing.report_run import Evidence, ReportCheck, run, runs, version
from agent.signing.trust import verify_chain

REPORT_TYP: Final = "evidence-report/2"
REPORT_TYP_DEVICES: Final = "evidence-report/3"  # several devices of one site: ``devices`` instead of range/items
REPORT_TYPS: Final = (REPORT_TYP, REPORT_TYP_DEVICES)
REPORT_DIR: Final = "report"
MANIFEST: Final = "manifest.json"
OFFICER_UNIT: Final = "evidence-officer"  # the subject OU every officer certificate carries
MAX_REPORT_FILE: Final = 256 * 1024 * 1024
MAX_MANIFEST: Final = 16 * 1024 * 1024
_WHERE: Final = f"{REPORT_DIR}/{MANIFEST}"


def sign_report(body: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                chain: Sequence[x509.Certificate] = ()) -> bytes:
    """The manifest file's bytes: the body with the officer's signature, certificate and its CAs."""
    if body.get("typ") not in REPORT_TYPS:
        raise ValueError(f"report body must have typ {' or '.join(REPORT_TYPS)}")
    data = canonical(body)
    envelope = {"body": body, "alg": "ES256", "key_id": key_id_of(key.public_key()),
                "sig": base64.b64encode(sign_with(key, data)).decode(),
                "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                        for c in (cert, *chain)]}
    return json.dumps(envelope, indent=1, sort_keys=True).encode() + b"\n"


def file_entry(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _unit_of(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]


def _signature(envelope: Mapping[str, Any], out: ReportCheck) -> tuple[dict[str, Any], list[x509.Certificate]] | None:
    body = envelope.get("body")
    if not isinstance(body, dict) or body.get("typ") not in REPORT_TYPS:
        typ = body.get("typ") if isinstance(body, dict) else None
        out.problem(_WHERE, f"not an {REPORT_TYP} manifest (typ {str(typ)[:40]!r}; older manifests do not name "
                            "the run they cover and cannot be proved)")
        return None
    try:
        sig = base64.b64decode(str(envelope["sig"]), validate=True)
        x5c = envelope["x5c"]
        if not isinstance(x5c, list) or not 1 <= len(x5c) <= 8:
            raise ValueError("x5c must list 1 to 8 certificates")
        certs = [x509.load_der_x509_certificate(base64.b64decode(str(c), validate=True)) for c in x5c]
        pub = certs[0].public_key()
    except (KeyError, IndexError, TypeError, ValueError, UnsupportedAlgorithm) as exc:
        out.problem(_WHERE, f"signature envelope malformed ({str(exc)[:200]})")
        return None
    if not isinstance(pub, ec.EllipticCurvePublicKey) or key_id_of(pub) != envelope.get("key_id"):
        out.problem(_WHERE, "the certificate does not hold the signing key")
        return None
    cns = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    out.officer, out.officer_key_id = (str(cns[0].value) if cns else None), key_id_of(pub)
    try:
        verify_with(pub, sig, canonical(body))
    except (SigningError, ValueError):
        out.problem(_WHERE, "report signature is invalid (manifest altered or signed by another key)")
        return None
    out.signature_valid = True
    return body, certs


def _officer(body: Mapping[str, Any], certs: list[x509.Certificate], ev: Evidence, out: ReportCheck,
             trusted: Sequence[x509.Certificate], at: dt.datetime | None) -> None:
    """The signer must be an officer (not the device), named in the body, vouched for by an officer CA."""
    if body.get("officer") != out.officer:
        out.problem(_WHERE, f"manifest names officer {str(body.get('officer'))[:80]!r} but is signed by "
                            f"{str(out.officer)[:80]!r}")
    if OFFICER_UNIT not in _unit_of(certs[0]):
        out.problem(_WHERE, f"signed by {str(out.officer)[:80]!r}, whose certificate is not an officer's "
                            f"(no subject OU {OFFICER_UNIT})")
    if out.officer_key_id in {ev.device_key_id, *ev.key_ids.values()} - {None}:
        out.problem(_WHERE, "signed with the device's own key, not an officer's")
    if not trusted:
        out.untrusted.append((_WHERE, "no --officer-ca given: nothing vouches for the officer's certificate"))
        return
    try:
        chain = verify_chain(certs, trusted, at=at, device=str(body.get("officer")))
    except VerificationError as exc:
        out.problem(_WHERE, f"officer certificate does not lead to a trusted officer CA: {exc}")
        return
    out.officer_trusted, out.officer_issuer = chain.trusted, chain.issuer


def _files(body: Mapping[str, Any], ev: Evidence, out: ReportCheck) -> None:
    raw_files = body.get("files")
    listed: dict[str, Any] = raw_files if isinstance(raw_files, dict) else {}
    for name, meta in sorted(listed.items()):
        size = meta.get("size") if isinstance(meta, dict) else None
        if not isinstance(size, int) or not 0 <= size <= MAX_REPORT_FILE or name == MANIFEST or "/" in name:
            out.files[str(name)[:80]] = False
            out.problem(f"{REPORT_DIR}/{str(name)[:80]}", "malformed file entry in the signed manifest")
            continue
        got = ev.hash_file(name, size) if name in ev.file_names else None
        ok = got is not None and got == (meta.get("sha256"), size)
        out.files[name] = ok
        if not ok:
            out.problem(f"{REPORT_DIR}/{name}", "missing" if got is None and name not in ev.file_names else
                        "does not match the signed manifest (report altered or replaced)")
    for name in ev.file_names:
        if name != MANIFEST and name not in listed:
            out.problem(f"{REPORT_DIR}/{name[:120]}", "not part of the signed report (an added file)")


def check_report(raw: bytes, ev: Evidence, *, trusted_officers: Sequence[x509.Certificate] = ()) -> ReportCheck:
    """Check a report manifest (its bytes) against the evidence."""
    out = ReportCheck(manifest_sha256=hashlib.sha256(raw).hexdigest())
    try:
        envelope = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        out.problem(_WHERE, f"not JSON ({str(exc)[:200]})")
        return out
    if not isinstance(envelope, dict):
        out.problem(_WHERE, "not a JSON object")
        return out
    signed = _signature(envelope, out)
    if signed is None:
        return out
    body, certs = signed
    out.case = str(body.get("case"))[:200]
    if body.get("typ") == REPORT_TYP_DEVICES or ev.chains is not None:
        if ev.chains is None or body.get("typ") != REPORT_TYP_DEVICES:
            out.problem(_WHERE, "a several-device report needs a bundle with devices/<id>/ folders, and such a "
                                f"bundle a {REPORT_TYP_DEVICES} manifest")
            return out
        runs(body, ev, out, len(raw))
    else:
        run(body, ev, out, len(raw))
    seal = ev.records.get(out.sealed_at_seq) if out.sealed_at_seq is not None else None
    _officer(body, certs, ev, out, trusted_officers, _sealed_time(seal[1]) if seal else None)
    version(body, ev, out)
    _files(body, ev, out)
    return out


def _sealed_time(rec: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(rec["captured"]["wall_us"]) / 1e6, dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _hasher(source: Any) -> Callable[[str, int], tuple[str, int] | None]:
    def hash_file(name: str, limit: int) -> tuple[str, int] | None:
        h, size = hashlib.sha256(), 0
        with source.open(f"{REPORT_DIR}/{name}") as fh:
            if fh is None:
                return None
            while chunk := fh.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    return ("", size)
                h.update(chunk)
        return h.hexdigest(), size

    return hash_file


def report_checker(trusted_officers: Sequence[x509.Certificate] = ()) -> Callable[[Any], None]:
    """A checker for ``agent.signing.verify.check(path, checkers=[report_checker(officer_cas)])``."""

    def check(ctx: Any) -> None:
        src = ctx.source
        if src.mode == "single":
            return
        prefix = REPORT_DIR + "/"
        names = [n[len(prefix):] for n in src.names(prefix)]
        refused = [n for n, _why in src.refused if n.startswith(prefix)]
        if not names and not refused:
            return
        raw = src.read(f"{REPORT_DIR}/{MANIFEST}", MAX_MANIFEST) if MANIFEST in names else None
        if raw is None:
            ctx.report.problem(REPORT_DIR, f"report folder without a readable {MANIFEST}")
            ctx.report.sections["report"] = ReportCheck().summary()
            return
        if ctx.chains is None:
            records = {it.seq: (it.signed.hash, it.record) for it in ctx.items}
            key_id = ctx.items[0].signed.key_id if ctx.items else None
            evidence = Evidence(records, key_id, names, _hasher(src))
        else:  # several devices: the seal and the superseded version are on the first listed device's chain
            chains = {d: {it.seq: (it.signed.hash, it.record) for it in items} for d, items in ctx.chains.items()}
            primary = _primary(raw)
            key_ids = {d: items[0].signed.key_id if items else None for d, items in ctx.chains.items()}
            evidence = Evidence(chains.get(primary, {}), key_ids.get(primary), names, _hasher(src), chains, key_ids)
        result = check_report(raw, evidence, trusted_officers=trusted_officers)
        for where, what in result.problems:
            ctx.report.problem(where, what)
        for where, what in result.warnings:
            ctx.report.warn(where, what)
        for where, why in result.untrusted:
            ctx.report.distrust(where, why)
        ctx.report.sections["report"] = result.summary()

    check.all_chains = True  # type: ignore[attr-defined]  # in a several-device bundle: once, over all chains
    return check


def _primary(raw: bytes) -> str | None:
    """The first listed device of a several-device manifest (checked, with the rest, by ``check_report``)."""
    try:
        devices = json.loads(raw)["body"]["devices"]
        return str(devices[0]["device_id"])
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
