"""Revision names, `<function>-<number>` with five digits (`iris-00002`): formatted and parsed only here.

The registry names each new revision of a function with the function's next number; the data plane,
which knows a revision only by its name, reads the function back from it.
"""

from __future__ import annotations


def revision_name(function: str, number: int) -> str:
    """`('iris', 2)` -> `'iris-00002'`."""
    return f"{function}-{number:05d}"


def function_of(revision: str) -> str:
    """`'iris-00002'` -> `'iris'` (function names may contain '-': the number is after the last one)."""
    return revision.rsplit("-", 1)[0]
