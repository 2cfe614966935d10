"""Signed-note and checkpoint known answers (C2SP spec example, Go sumdb/note example) and ECDSA round trips."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agent.anchor.note import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    ecdsa_verifier,
    ecdsa_verifier_key,
    format_note,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_verifier_key,
    sign_note,
)
from agent.core.errors import VerificationError

VEC = json.loads((Path(__file__).resolve().parents[1] / "data" / "signed-note" / "vectors.json").read_text("utf-8"))


def test_c2sp_spec_example_parses() -> None:
    v = VEC["c2sp_spec_example"]
    note = parse_note(v["note"].encode())
    assert note.text == v["text"]
    assert [s.name for s in note.sigs] == [v["key_name"]]
    raw = base64.b64decode(v["note"].rsplit(" ", 1)[1])
    assert note.sigs[0].key_id == int.from_bytes(raw[:4], "big")
    assert len(note.sigs[0].sig) == 64  # Ed25519
    assert format_note(note.text, note.sigs) == v["note"]


def test_go_example_verifies_and_signs_byte_for_byte() -> None:
    v = VEC["go_sumdb_note_example"]
    verifier = parse_verifier_key(v["vkey"])
    assert verifier.key_id == 0xC74F20A3
    assert open_note(v["note"], [verifier]).text == v["text"]
    seed = base64.b64decode(v["skey"].split("+", 4)[4])[1:]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    signer = NoteSigner("PeterNeumann", verifier.key_id, key.sign)
    assert sign_note(v["text"], signer) == v["note"]
    with pytest.raises(VerificationError, match="invalid"):
        open_note(v["note"].replace("cryptography", "cryptographY"), [verifier])


def test_checkpoint_example_body() -> None:
    v = VEC["c2sp_checkpoint_example"]
    cp = parse_checkpoint(parse_note(v["note"]).text)
    assert (cp.origin, cp.size, base64.b64encode(cp.root).decode()) == (v["origin"], v["size"], v["root_b64"])
    assert cp.body() == parse_note(v["note"]).text


def test_ecdsa_checkpoint_round_trip_and_unknown_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = NoteSigner.from_private_key("evidence.example/dev1", key)
    cp = Checkpoint("evidence.example/dev1", 12, bytes(range(32)))
    signed = sign_note(cp.body(), signer)
    vkey = ecdsa_verifier_key("evidence.example/dev1", key.public_key())
    assert open_checkpoint(signed, [parse_verifier_key(vkey)], origin="evidence.example/dev1") == cp
    other = ecdsa_verifier("evidence.example/dev1", ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(VerificationError, match="no signature from a trusted key"):
        open_note(signed, [other])
    tampered = signed.replace("\n12\n", "\n13\n")
    with pytest.raises(VerificationError, match="invalid"):
        open_note(tampered, [parse_verifier_key(vkey)])


@pytest.mark.parametrize(
    "bad",
    ["no blank line\n— a AAAAAAA=\n", "text\n\n— a AAAAAAA=", "text\n\nx a AAAAAAA=\n", "text\n\n— a+b AAAAAAA=\n",
     "te\x01xt\n\n— a AAAAAAA=\n", "text\n\n— a !!!!\n"],
)
def test_malformed_notes_rejected(bad: str) -> None:
    with pytest.raises(VerificationError):
        parse_note(bad)


def test_unsigned_signature_list_and_bad_checkpoints() -> None:
    with pytest.raises(VerificationError):
        parse_checkpoint("o\n01\n" + base64.b64encode(bytes(32)).decode() + "\n")
    with pytest.raises(VerificationError):
        parse_checkpoint("o\n1\nAAAA\n")
    assert format_note("t\n", [NoteSignature("n", 1, b"x")]).startswith("t\n\n— n ")
