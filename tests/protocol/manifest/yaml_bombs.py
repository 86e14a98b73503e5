"""Hostile function.yaml text shared by the parser's tests and the platform's (tests/security)."""

from __future__ import annotations


def alias_bomb(levels: int) -> str:
    """The billion laughs in YAML: each level is a list of nine aliases of the one before, ~1 KB of text
    that expands to 9**levels strings."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 9) + "]")
    lines.append(f"name: *lol{levels}")
    return "\n".join(lines) + "\n"
