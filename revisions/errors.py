"""The registry's refusals, typed: the control API maps each type to its status (400, 404, 409).

Transport-independent: nothing here knows HTTP; `zeroserve/api/errors.py` owns the mapping.
"""

from __future__ import annotations


class RegistryError(Exception):
    """A request the registry refuses as invalid (e.g. an unknown revision status, a newer schema)."""


class NotFoundError(RegistryError, LookupError):
    """The named function, revision or route does not exist."""


class ConflictError(RegistryError):
    """The request is valid but the function's state does not allow it (e.g. nothing to roll back to)."""
