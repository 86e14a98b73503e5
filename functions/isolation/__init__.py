"""Confining a process that runs a function's code: the build's smoke child and every replica.

User code (a handler's import, its `load()` and `predict()`, a model file ONNX Runtime parses) runs only
after `confine()` has, in this order:

- replaced the environment with the platform's allowlist plus the function's own `env` (`environment`);
- applied `resources.threads` and `resources.memory` (`limits`);
- dropped to the function's unprivileged uid/gid, when the platform runs as root (`confine`);
- tied the process's life to its parent's (PR_SET_PDEATHSIG, set after the drop, which clears it).

A process whose identity is dropped first narrows what it can see of the file system (`view`): the
directories it needs (the Python installation, the runtime, its own function directory and home) stay
reachable even when an ancestor is private (0700), and nothing else under such an ancestor is visible.
`orphans` records the processes the platform starts, so the next start can sweep what a killed
platform left running.

Both the revision builder (`revisions`) and the local supervisor (`deploy.local`) use this package, so
there is one definition of what a function may inherit.
"""

from functions.isolation.confine import Confinement, Identity, confine, die_with_parent
from functions.isolation.environment import function_environment, inherited_environment
from functions.isolation.limits import OUT_OF_MEMORY_EXIT_CODE, is_out_of_memory

__all__ = [
    "OUT_OF_MEMORY_EXIT_CODE", "Confinement", "Identity", "confine", "die_with_parent", "function_environment",
    "inherited_environment", "is_out_of_memory",
]
