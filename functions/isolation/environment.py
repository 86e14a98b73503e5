"""What a function process inherits from the platform's environment: an allowlist, never the rest.

An allowlist, because credentials hide under many names (AWS_*, *_TOKEN, DSNs, ZEROSERVE_*): what is
not named here stays with the platform. HOME and TMPDIR are the function's own private directory,
never the platform's; the function's `env` comes on top, and `resources.threads` last.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from functions.isolation.limits import thread_env

# Enough to find Python, its packages, the locale and accelerators.
INHERITED_NAMES = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
    "SYSTEMROOT", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
})
INHERITED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "ORT_")


def inherited_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowlisted part of `environ` (this process's environment by default)."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items()
            if name in INHERITED_NAMES or name.startswith(INHERITED_PREFIXES)}


def function_environment(inherited: Mapping[str, str], *, home: str, function_env: Mapping[str, str],
                         threads: int | None) -> dict[str, str]:
    """A function process's whole environment: the allowlist, its private home, its env, its threads."""
    env = dict(inherited)
    env["HOME"] = home
    env["TMPDIR"] = home
    env.update(function_env)
    env.update(thread_env(threads))
    return env


def with_runtime_on_path(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the directory holding our packages first on PYTHONPATH.

    A child started with `python -P -m <our module>` then imports this very checkout's runtime and
    nothing from its working directory.
    """
    env = dict(env)
    spec = importlib.util.find_spec("functions")
    if spec is not None and spec.submodule_search_locations:
        packages_root = str(Path(next(iter(spec.submodule_search_locations))).parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (packages_root, env.get("PYTHONPATH")) if p)
    return env
