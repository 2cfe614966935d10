"""The fast canonical-JSON path is byte-identical to the ``rfc8785`` package (property tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.core.errors import VerificationError
from agent.signing.canonical import canonical, fast_path_applies, load_canonical
from agent.signing.records import parse_sidecar

SAFE = 2**53 - 1
# Every code point, lone surrogates included (json.loads produces them from "\ud800" escapes).
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
control_heavy = st.text(st.sampled_from(['"', "\\", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f",
                                         "\u2028", "\ue000", "\uffff", "\U0001f600", "a", "é"]), max_size=8)
texts = any_text | control_heavy
ascii_keys = st.text(st.characters(max_codepoint=0x7F), max_size=6)
any_keys = texts | ascii_keys
ints = st.integers(-SAFE - 3, SAFE + 3) | st.integers()
scalars = st.none() | st.booleans() | ints | texts | st.floats(allow_nan=True, allow_infinity=True)
plain_floats = st.floats(1e-4, 1e16, exclude_max=True).filter(lambda f: not f.is_integer())
safe_scalars = (st.none() | st.booleans() | st.integers(-SAFE, SAFE) | texts | plain_floats
                | plain_floats.map(lambda f: -f))


def _values(scalar: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
                        max_leaves=30)


any_values = _values(scalars, any_keys)
fast_values = _values(safe_scalars, ascii_keys)


def _reference(obj: Any) -> bytes | None:
    try:
        return rfc8785.dumps(obj)
    except (ValueError, TypeError):  # CanonicalizationError, and UnicodeEncodeError for a lone-surrogate key
        return None


def _ours(obj: Any) -> bytes | None:
    try:
        return canonical(obj)
    except ValueError:
        return None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(obj=fast_values)
@example({"b": 1, "a": [SAFE, -SAFE, True, False, None, "\x00\x1f\x7f\"\\\u2028\U0001f600"]})
@example({"": {}, "A": [], "a": [[]], "~": "\ud800"})
@example({"lat": 31.2304, "lon": -121.4737, "hdop": 0.9, "age_s": 0.2, "tiny": 1e-4, "big": 999999999999999.9,
          "digits": 123456789012345.67, "third": 1 / 3})
def test_fast_path_values_encode_exactly_as_rfc8785(obj: Any) -> None:
    assert fast_path_applies(obj)
    assert _ours(obj) == _reference(obj)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(obj=any_values)
@example({"\ue000": 1, "\U0001f600": 2})  # code-point order differs from UTF-16 order: the fallback sorts
@example({"n": 2**53})
@example({"n": -(2**53)})
@example({"f": 1.0, "g": 1e21, "h": -0.0, "i": 9.999999999999999e-05, "j": 1e16, "k": 5e-324,
          "l": 1.7976931348623157e308, "m": float("nan"), "n": float("-inf"), "o": 1e-7, "p": 1.5e20})
@example({1: "non-string key"})
def test_every_value_encodes_exactly_as_rfc8785_or_fails_as_it_does(obj: Any) -> None:
    assert _ours(obj) == _reference(obj)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(any_keys, any_values, max_size=6), style=st.integers(0, 3))
def test_sidecar_canonical_check_agrees_with_rfc8785(obj: Any, style: int) -> None:
    """parse_sidecar accepts a record line exactly when rfc8785 would re-create it byte for byte."""
    try:
        body = [lambda: rfc8785.dumps(obj),
                lambda: json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(),
                lambda: json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(),
                lambda: json.dumps(obj).encode()][style]()
    except (rfc8785.CanonicalizationError, ValueError, UnicodeEncodeError):
        return
    if b"\n" in body:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    expected = _reference(parsed) == body
    sidecar = body + b'\n{"alg":"ES256","key_id":"k","sig":"","x5c":[]}\n'
    try:
        parse_sidecar(sidecar, "x.rec")
        accepted = True
    except VerificationError as exc:
        assert "canonical" in str(exc) or "canonicalised" in str(exc), exc
        accepted = False
    assert accepted == expected


@pytest.mark.parametrize("obj", [{"a": 1.0}, {"a": 1e-5}, {"a": 1e16}, {"a": -0.0}, {"a": float("nan")},
                                 {"a": 2**53}, {"é": 1}, {"a": (1, 2)}, {1: 2}, [{"a": {"b": [1.0]}}]])
def test_values_outside_the_fast_path_take_the_reference_path(obj: Any) -> None:
    assert not fast_path_applies(obj)


def test_deep_nesting_is_refused_by_name_not_by_a_crash() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert fast_path_applies(deep)  # the safety walk itself is iterative
    with pytest.raises((ValueError, RecursionError)):
        canonical({"a": deep})


@pytest.mark.parametrize("line", [
    b'{"a":1}', b'{"a":1.0}', b'{"a":1.5}', b'{"a":0.00001}', b'{"a":1e-05}', b'{"a":0.0001}', b'{"a":1E2}',
    b'{"a":100}', b'{"a":-0.0}', b'{"a":0}', b'{"a":9007199254740991}', b'{"a":-9007199254740991}',
    b'{"a":9007199254740992}', b'{"a":-9007199254740993}', b'{"a":NaN}', b'{"a":-Infinity}',
    b'{"a":9999999999999998.0}', b'{"a":1234567890123456.7}', b'{"a":10000000000000000}',
    b'{"\\u00e9":1}', '{"é":1}'.encode(), b'{"b":1,"a":2}', b'{"a":"\\u001f"}', b'{"a":"\\u001F"}',
    b'{"a":"\\ud800"}', b'{"a":"x\\/y"}', b'{"a":[1,{"b":0.5}]}', b'{"a":1,"a":1}', b'{ "a":1}', b'[1]',
    b'{"a":"\x7f"}', b'{"a":"\\u007f"}', b'{"a":"\\n\\"\\\\"}'])
def test_load_canonical_agrees_with_rfc8785_on_tricky_lines(line: bytes) -> None:
    """The parse-time proof (hooks, ASCII, no \\u escape) never accepts a line rfc8785 would not write."""
    value = json.loads(line)
    try:
        expected: bool | None = isinstance(value, dict) and rfc8785.dumps(value) == line
    except (ValueError, TypeError):
        expected = None
    try:
        parsed, in_form = load_canonical(line)
    except ValueError:
        assert expected is None or not isinstance(value, dict), line
        return
    assert in_form == bool(expected), line
    assert json.dumps(parsed) == json.dumps(value)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(any_keys, any_values, max_size=6))
def test_load_canonical_accepts_exactly_the_reference_bytes(obj: Any) -> None:
    body = _reference(obj)
    if body is None or b"\n" in body:
        return
    again = _reference(json.loads(body))
    if again is None:  # e.g. 9007199254740992.0 written as an integer beyond 2**53 - 1: refused by name
        with pytest.raises(ValueError):
            load_canonical(body)
        return
    assert load_canonical(body)[1] == (again == body)
