"""A Service as YAML, byte for byte the same for the same Service: what `zeroserve export knative FN` prints.

Keys are sorted (apiVersion, kind, metadata, spec come out in the order people expect), block style,
no line folding, and strings that YAML would read back as something else ("true", "100", "1e+20")
quoted, so `kubectl apply -f` gets exactly the object a deploy applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def render_yaml(service: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(service), sort_keys=True, default_flow_style=False, allow_unicode=True,
                          width=1 << 16, indent=2)


__all__ = ["render_yaml"]
