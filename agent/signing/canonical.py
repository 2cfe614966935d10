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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rfc8785

__all__ = ["canonical", "fast_path_applies"]

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
