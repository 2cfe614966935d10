"""RFC 8785 (JCS) canonical JSON, with a fast path through the standard library's C encoder.

For a value made only of dicts with ASCII string keys, lists, strings, booleans, null and integers
within +-(2**53 - 1), ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes
exactly the bytes RFC 8785 prescribes: ASCII keys sort the same by code point as by UTF-16 code unit,
both escape only ``"``, ``\\`` and U+0000..U+001F (with the same short forms and lower-case ``\\u00xx``),
and integers in that range print the same. Anything else -- floats, big integers, non-ASCII keys,
subclasses, strings that are not valid UTF-8 (lone surrogates) -- goes through the ``rfc8785`` package.
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
    stack = [obj]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -_INT_MAX <= v <= _INT_MAX:  # type: ignore[operator]
                continue
            return False
        if t is dict:
            for k, item in v.items():  # type: ignore[attr-defined]
                if type(k) is not str or not k.isascii():
                    return False
                push(item)
            continue
        if t is list:
            extend(v)  # type: ignore[arg-type]
            continue
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
