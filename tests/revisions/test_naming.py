"""Revision names: formatted by the registry, parsed back by the data plane (revisions/naming.py)."""

from __future__ import annotations

import pytest

from revisions.naming import function_of, revision_name

NAMES = [
    ("iris", 1, "iris-00001"),
    ("iris", 42, "iris-00042"),
    ("a-dashed-name", 7, "a-dashed-name-00007"),  # the function is everything before the last '-'
    ("big", 123456, "big-123456"),  # past five digits the number just grows
]


@pytest.mark.parametrize(("function", "number", "name"), NAMES, ids=[n for _, _, n in NAMES])
def test_format_then_parse(function: str, number: int, name: str) -> None:
    assert revision_name(function, number) == name
    assert function_of(name) == function
