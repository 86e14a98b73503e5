"""Durations as users write them in function.yaml ("60s", "5m", "1h30m", "500ms", 2.5) -> seconds."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds from a number (already seconds) or a Go-style duration string.

    Raises ValueError with the rule the value breaks, so manifest errors can name it.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '60s', '5m' or a number of seconds")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as '60s', '5m' or a number of seconds")
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"'{value}' is not a duration: use forms like '500ms', '6s', '5m', '1h30m'")
    return total


def format_duration(seconds: float) -> str:
    """Shortest exact rendering, used in error messages and normalised manifests."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"
