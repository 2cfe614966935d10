"""RFC 8785 (JCS) canonical JSON, with a fast path through the standard library's C encoder.

For a value made only of dicts with ASCII string keys, lists, strings, booleans, null, integers within
+-(2**53 - 1) and non-integral floats of magnitude 1e-4 <= |x| < 1e16 (GPS coordinates, HDOP, ages),
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes exactly the bytes RFC 8785
prescribes: ASCII keys sort the same by code point as by UTF-16 code unit; both escape only ``"``, ``\\``
and U+0000..U+001F (with the same short forms and lower-case ``\\u00xx``); such integers print the same; and
such floats print as Python's shortest round-trip ``repr`` in plain decimal notation, which is what
ECMAScript's Number-to-String gives them (RFC 8785 3.2.2.3; integral floats, exponents, -0.0, NaN differ).
Anything else -- other floats, big integers, non-ASCII keys, subclasses, strings that are not valid
UTF-8 (lone surrogates) -- goes through the ``rfc8785`` package.
tests/unit/test_canonical.py checks the two byte for byte with hypothesis.

``load_canonical`` parses a record line and checks it is in that form. It proves the fast path applies
while parsing instead of walking the parsed value: keys are ASCII when the line is ASCII and holds no ``\\u``
escape (nor DEL, which only the ASCII encoder escapes), and the decoder's hooks see every float, every
NaN/Infinity literal and every integer; anything outside the fast path sends the line through ``canonical`` as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rfc8785

__all__ = ["canonical", "fast_path_applies", "load_canonical", "load_line"]

_INT_MAX = 2**53 - 1
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           check_circular=False, allow_nan=False).encode


def fast_path_applies(obj: object) -> bool:
    """True when the standard encoder is byte-identical to RFC 8785 for ``obj`` (see the module doc).

    Iterative, so a deeply nested value costs no recursion here (the encoders decide about that).
    """
    pending: list[Any] = [[obj]]
    pop, push = pending.pop, pending.append
    while pending:
        container = pop()
        if type(container) is dict:
            try:
                if not "".join(container).isascii():  # every key a str (else TypeError), and ASCII
                    return False
            except TypeError:
                return False
            values = container.values()
        else:
            values = container
        for v in values:
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is dict or t is list:
                push(v)
            elif t is int:
                if not -_INT_MAX <= v <= _INT_MAX:
                    return False
            elif t is float:  # NaN and the infinities fail the range test
                if not 1e-4 <= abs(v) < 1e16 or v.is_integer():
                    return False
            else:
                return False
    return True


def canonical(obj: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON bytes (no whitespace, sorted keys, no raw newlines).

    Raises ValueError for what RFC 8785 cannot express (NaN, integers beyond 2**53 - 1, lone surrogates).
    """
    if fast_path_applies(obj):
        try:
            return _encode(obj).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 names the problem
            pass
    try:
        return rfc8785.dumps(obj)  # type: ignore[arg-type]
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValueError(f"record cannot be canonicalised: {exc}") from exc


class _Outside(Exception):
    """A literal the fast path does not cover (the line takes the general path)."""


def _float(text: str) -> float:
    v = float(text)
    if not 1e-4 <= abs(v) < 1e16 or v.is_integer():
        raise _Outside
    return v


def _int(text: str) -> int:
    v = int(text)
    if not -_INT_MAX <= v <= _INT_MAX:
        raise _Outside
    return v


def _constant(text: str) -> float:
    raise _Outside


def _unencodable(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON")


_decode_checked = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_constant).decode
_decode = json.JSONDecoder().decode
_make = getattr(json.encoder, "c_make_encoder", None)  # the C encoder, without JSONEncoder.encode's set-up per call
_chunks = None if _make is None else _make(None, _unencodable, json.encoder.encode_basestring_ascii, None, ":", ",",
                                           True, False, False)
_encode_ascii_py = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False, allow_nan=False).encode


def _encode_ascii(value: Any) -> str:
    return _encode_ascii_py(value) if _chunks is None else "".join(_chunks(value, 0))


def load_canonical(line: bytes) -> tuple[Any, bool]:
    """(the parsed JSON value, whether ``line`` is its RFC 8785 canonical form).

    Raises what ``json.loads`` raises for a line that is not JSON (JSONDecodeError, UnicodeDecodeError,
    RecursionError) and ValueError for a value RFC 8785 cannot express.
    """
    if (line[:1] == b"{" and line.isascii() and (b"\\" not in line or b"\\u" not in line)  # memchr first
            and b"\x7f" not in line):
        text = line.decode("ascii")
        try:
            value = _decode_checked(text)
        except _Outside:
            pass
        else:  # ASCII keys, integers within +-(2**53 - 1), fast-path floats: the C encoder writes RFC 8785
            # (with ensure_ascii, which changes nothing for ASCII strings without DEL)
            return value, type(value) is dict and _encode_ascii(value) == text
    value = load_line(line)
    return value, type(value) is dict and canonical(value) == line


def load_line(line: bytes) -> Any:
    """``json.loads(line)``; a line opening with ``{`` and no NUL after it is UTF-8 to ``json.loads`` (its
    encoding detection looks at the first bytes only), so that case skips the detection."""
    if line[:1] == b"{" and line[1:2] not in (b"\x00", b""):
        return _decode(line.decode("utf-8", "surrogatepass"))
    return json.loads(line)
