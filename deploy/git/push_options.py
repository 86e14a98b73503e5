"""`git push -o KEY=VALUE`: per-deploy overrides of the manifest's traffic policy.

    git push -o traffic=10 zeroserve main          # the new revision gets 10 %, the rest keeps 90 %
    git push -o traffic=0 -o tag=canary ...        # reachable only at canary-<fn>.<domain>
    git push -o rollout=5m ...                     # move to the target percent gradually over 5 minutes

The result uses the field names of `protocol.manifest.Traffic` (percent, tag, rollout_duration), which
is what the deploy service merges over the manifest. Anything unknown or malformed rejects the push,
naming the option: a typo must not deploy with the manifest's policy as if nothing was asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.durations import parse_duration
from protocol.manifest import check_dns1035

MAX_ROLLOUT_SECONDS = 24 * 3600
KNOWN_OPTIONS = ("traffic", "tag", "rollout")


class PushOptionError(ValueError):
    """An option the remote does not know or cannot read; the message names it and the rule."""


def parse_push_options(options: Sequence[str] | None) -> dict[str, Any]:
    """The traffic override the options ask for ({} when none); raises PushOptionError."""
    override: dict[str, Any] = {}
    seen: set[str] = set()
    for option in options or ():
        key, equals, value = option.partition("=")
        key, value = key.strip(), value.strip()
        if key not in KNOWN_OPTIONS:
            known = ", ".join(f"{name}=" for name in KNOWN_OPTIONS)
            raise PushOptionError(f"push option '{option}' is not known (known: {known})")
        if not equals or not value:
            raise PushOptionError(f"push option '{option}' needs a value, e.g. -o {_EXAMPLES[key]}")
        if key in seen:
            raise PushOptionError(f"push option '{key}' is given more than once")
        seen.add(key)
        field, parsed = _PARSERS[key](option, value)
        override[field] = parsed
    return override


def _traffic(option: str, value: str) -> tuple[str, int]:
    digits = value.removesuffix("%")
    if not digits.isdigit() or not 0 <= int(digits) <= 100:
        raise PushOptionError(f"push option '{option}': traffic must be a whole percent from 0 to 100")
    return "percent", int(digits)


def _tag(option: str, value: str) -> tuple[str, str]:
    try:
        return "tag", check_dns1035(value, "tag")
    except ValueError as exc:
        raise PushOptionError(f"push option '{option}': {exc}") from None


def _rollout(option: str, value: str) -> tuple[str, float]:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise PushOptionError(f"push option '{option}': {exc}") from None
    if not 0 <= seconds <= MAX_ROLLOUT_SECONDS:
        raise PushOptionError(f"push option '{option}': rollout must be between 0s and 24h")
    return "rollout_duration", seconds


_PARSERS = {"traffic": _traffic, "tag": _tag, "rollout": _rollout}
_EXAMPLES = {"traffic": "traffic=10", "tag": "tag=canary", "rollout": "rollout=5m"}

__all__ = ["KNOWN_OPTIONS", "PushOptionError", "parse_push_options"]
