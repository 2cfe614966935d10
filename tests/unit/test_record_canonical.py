"""The ingest's fast canonical-form check (agent/customs/record_check.py) decides exactly as rfc8785 does."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.customs.record_check import fast_sidecar, is_canonical
from agent.signing.records import parse_sidecar

# every JSON value: any text (controls, astral planes, lone surrogates), floats of every size, ints past 2^53
_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
_scalar = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.integers(-100, 100) \
    | st.floats(allow_nan=True, allow_infinity=True) | _text
_json = st.recursive(_scalar, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4),
                     max_leaves=12)


def reference(body: bytes) -> bool:
    """What rfc8785 itself says: the bytes are the canonical form of the value they hold."""
    try:
        return bool(rfc8785.dumps(json.loads(body)) == body)
    except (ValueError, RecursionError, UnicodeError, TypeError):
        return False


def spellings(value: Any) -> list[bytes]:
    """Bytes a device might send for ``value``: canonical, Python's compact/sorted/ASCII spellings."""
    out = []
    with contextlib.suppress(rfc8785.CanonicalizationError, ValueError):
        out.append(rfc8785.dumps(value))
    for ensure_ascii in (False, True):
        for sort in (False, True):
            try:
                text = json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort, separators=(",", ":"))
                out.append(text.encode("utf-8", "surrogatepass"))
            except (ValueError, UnicodeError):
                pass
    return out


@settings(max_examples=1500, deadline=None)
@given(_json)
@example({"\U0001f600": 1, "\ufb01": 2})  # sorted by code point (Python) vs UTF-16 units (RFC 8785) differ
@example({"a": 1e21, "b": 1e-7, "c": 0.1, "d": -0.0, "e": 1.0, "f": 5e-324})
@example({"n": 2**53 - 1, "m": 2**53, "k": -(2**53) + 1, "j": -(2**53)})
@example({"s": "\x00\x1f\x7f\u2028\ud800", "t": "\\\"\b\f\n\r\t"})
def test_fast_check_is_rfc8785(value: Any) -> None:
    for body in spellings(value):
        assert is_canonical(body) == reference(body), body


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=40) | st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b'{"a":-0}')
@example(b'\xef\xbb\xbf{"a":1}')
@example(b'{"a":1,"a":1}')
@example(b'{"a":1E2}')
@example(b'{"a":"\\u00e9"}')
@example(b'{"a":"\\u001F"}')
@example(b"[" * 100_000)
def test_fast_check_on_arbitrary_bytes(body: bytes) -> None:
    assert is_canonical(body) == reference(body)


@settings(max_examples=300, deadline=None)
@given(_json, st.sampled_from([b"", b"\n", b"\n\n", b"\nx"]))
def test_fast_sidecar_parses_as_parse_sidecar(value: Any, tail: bytes) -> None:
    envelope = b'{"alg":"ES256","key_id":"k1","sig":"AAEC","x5c":["AwQ="]}'
    for body in spellings({"r": value}):
        data = body + b"\n" + envelope + tail
        try:
            want = parse_sidecar(data, "record")
        except Exception as exc:  # the refusal must be the same, word for word
            try:
                fast_sidecar(data, "record")
            except Exception as got:
                assert (type(got), str(got)) == (type(exc), str(exc))
            else:
                raise AssertionError(f"fast path accepted {data!r}") from None
            continue
        got = fast_sidecar(data, "record")
        assert (got.body, got.sig, got.key_id, got.x5c) == (want.body, want.sig, want.key_id, want.x5c)
        assert got.record == want.record
