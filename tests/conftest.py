"""Suite-wide settings: results must not depend on how fast (or how busy) the machine is.

Hypothesis by default fails an example slower than 200 ms (`deadline`) and a strategy that generates data
slowly (`HealthCheck.too_slow`): both measure the machine, not the code. Tests that set their own
`@settings(...)` inherit these for every field they do not set.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("zeroserve", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("zeroserve")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory a function's own processes can read and write too (mode 0777, under the system temp dir).

    Run as root, the platform runs functions as users of their own, in a view of the file system that
    does not show pytest's private temp dirs (0700); a test that talks to a handler through files
    (a gate, a pid file) puts them here. Not sticky: a build's user may replace a file a replica's left.
    """
    path = Path(tempfile.mkdtemp(prefix="zeroserve-shared-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
