"""The file that keeps each function's user id (deploy/local/identities.py): its form, and a clear error when it
does not fit. No root needed: only the file is exercised here (test_identities.py runs the replicas)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.local.identities import PerFunctionIdentities


def test_indexes_are_kept_in_the_file_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users = PerFunctionIdentities(path, 2_000_000_000)
    assert users.for_function("beta").uid == 2_000_000_001
    assert users.for_function("alpha").uid == 2_000_000_002
    assert users.for_function("beta").uid == 2_000_000_001
    assert json.loads(path.read_text()) == {"functions": {"alpha": 2, "beta": 1}, "next": 3}
    assert path.read_text() == json.dumps({"functions": {"alpha": 2, "beta": 1}, "next": 3}, indent=1)
    assert (path.stat().st_mode & 0o777) == 0o600
    again = PerFunctionIdentities(path, 2_000_000_000)
    assert again.for_function("alpha").uid == 2_000_000_002 and again.for_function("gamma").uid == 2_000_000_003


def test_a_next_below_a_used_index_never_hands_that_index_out_again(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text('{"functions": {"alpha": 5}, "next": 2}')
    assert PerFunctionIdentities(path, 0).for_function("beta").uid == 6


@pytest.mark.parametrize("content, problem", [
    ("{not json", "the file: Invalid JSON"),
    ('{"functions": {"alpha": "one"}, "next": 2}', "functions.alpha: Input should be a valid integer"),
    ('{"functions": {}}', "next: Field required"),
    ('{"functions": {}, "next": 1, "nxet": 2}', "nxet: Unexpected keyword argument"),
], ids=["not JSON", "an index that is not a number", "no next", "an unknown key"])
def test_an_unreadable_file_is_refused_naming_the_file_and_the_field(tmp_path: Path, content: str,
                                                                     problem: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="unreadable function user ids") as raised:
        PerFunctionIdentities(path, 0)
    assert str(path) in str(raised.value) and problem in str(raised.value)
    assert "fix it rather than delete it" in str(raised.value)
    assert path.read_text() == content  # nothing changed
