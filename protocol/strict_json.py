"""JSON as RFC 8259 defines it, for every body the platform's port reads or writes.

Python's `json` is laxer in two ways that matter to a server: it reads and writes `NaN`, `Infinity`
and `-Infinity` (not JSON: strict parsers such as JavaScript's `JSON.parse` refuse the whole body),
and it nests until the interpreter's recursion limit, so `[` x 50,000 ends in a RecursionError
instead of a client error. `loads` refuses both with a message naming the rule; `dumps` refuses
non-finite floats (writers decide beforehand how to carry them, e.g. tensors write null).

Nesting is bounded by `MAX_JSON_DEPTH` arrays and objects, far above what any request needs (a V2
tensor of the largest rank, `protocol.tensors.MAX_RANK` = 32, nests 35 deep). The check costs one
`bytes.translate` on bodies with few brackets, and a numpy scan of the brackets outside strings otherwise.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_JSON_DEPTH = 64

# Everything but brackets, quotes and backslashes, for bytes.translate(None, delete) to drop.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
# A JSON string (the text has parsed, so it is well formed): brackets inside it are not structure.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class JsonRuleError(ValueError):
    """Well-formed text that breaks a rule: a non-finite number, or nesting beyond the limit."""


def _refuse_constant(name: str) -> Any:
    raise JsonRuleError(
        f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity); send NaN as null, or non-finite "
        "tensors with the binary tensor extension"
    )


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def nesting_error() -> JsonRuleError:
    return JsonRuleError(f"arrays and objects are nested more than {MAX_JSON_DEPTH} deep "
                         f"(the nesting limit, MAX_JSON_DEPTH)")


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse `raw` (UTF-8, -16 or -32, detected like `json.loads` does); ValueError names the fault.

    json.JSONDecodeError for bad syntax, UnicodeDecodeError for bad bytes, JsonRuleError for NaN,
    Infinity or nesting deeper than MAX_JSON_DEPTH.
    """
    data: bytes | None = None
    if isinstance(raw, str):
        text = raw
    else:
        data = bytes(raw)
        encoding = json.detect_encoding(data)
        text = data.decode(encoding)
        if not encoding.startswith("utf-8"):  # UTF-16/32 bytes: count brackets in UTF-8 instead
            data = None
    try:
        value = _DECODER.decode(text)
    except RecursionError:  # thousands deep: the C scanner gives up before we could count
        raise nesting_error() from None
    if _too_deep(text.encode("utf-8", "surrogatepass") if data is None else data):
        raise nesting_error()
    return value


def _too_deep(data: bytes) -> bool:
    """Whether well-formed JSON nests deeper than MAX_JSON_DEPTH, counting brackets outside strings."""
    structure = data.translate(None, _NOT_STRUCTURE)
    if len(structure) <= MAX_JSON_DEPTH:  # the usual case: depth <= brackets opened < structure bytes
        return False
    if b"\\" in structure:  # escapes: only a real scan tells quotes that end strings from the rest
        brackets = _STRING.sub(b"", data).translate(None, _NOT_STRUCTURE)
    else:  # no escapes: quotes alternate opening and closing strings
        brackets = b"".join(structure.split(b'"')[0::2])
    if len(brackets) <= MAX_JSON_DEPTH:
        return False
    steps = np.frombuffer(brackets.translate(_DEPTH_STEPS), dtype=np.int8)
    # The running sum is the depth at each bracket, below the parser's recursion limit (the text parsed),
    # so int16 holds it: 2 bytes per bracket of a body that may hold millions.
    return int(steps.cumsum(dtype=np.int16).max()) > MAX_JSON_DEPTH


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; ValueError on a NaN or infinite float (RFC 8259 has none)."""
    return _ENCODER.encode(value).encode()
