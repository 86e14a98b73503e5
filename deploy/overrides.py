"""One deploy's override of the manifest's traffic policy (e.g. `git push -o traffic=10 -o tag=canary`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from protocol.manifest import FunctionManifest, Traffic

# Overrides of the manifest's `traffic` policy for one deploy (Traffic's fields: percent, tag,
# rollout_duration in seconds).
TrafficOverride = Mapping[str, Any]


class DeployRefused(ValueError):
    """A built function this deploy must not record (wrong repository, unusable traffic override)."""


def apply_traffic_override(manifest: FunctionManifest, override: TrafficOverride | None) -> FunctionManifest:
    """The manifest with its traffic policy overridden for one deploy; DeployRefused names the rule broken.

    Only the policy recorded with the deploy changes: the digest (the revision's identity) stays that
    of the function as written, so `-o traffic=10` on unchanged content is still "unchanged".
    """
    if not override:
        return manifest
    try:
        policy = Traffic.model_validate({**manifest.traffic.model_dump(), **dict(override)})
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise DeployRefused(f"traffic override refused: {detail}") from None
    if policy.percent == 0 and policy.tag is None:
        raise DeployRefused("traffic override refused: traffic=0 needs a tag (e.g. -o tag=canary), "
                            "or the new revision is unreachable")
    return manifest.model_copy(update={"traffic": policy})
