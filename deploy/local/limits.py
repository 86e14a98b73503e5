"""Per-replica limits, applied in the replica process before it loads its model.

Threads: the runtime sizes ONNX Runtime / torch pools from `resources.threads` itself; the env vars
here cover the libraries that read their own (OpenMP, MKL, numexpr) and any handler code.
Memory: RLIMIT_AS caps the address space, the closest a plain process gets to a container limit.
It counts *virtual* memory, shared libraries included, so the limit must exceed what the runtime
already maps at fork; a limit below that is refused with a message naming both numbers.
"""

from __future__ import annotations

import os
import resource
import sys

# Set in the zygote before anything imports numpy or onnxruntime: OpenBLAS starts its thread pool at
# import unless told to use one thread, and ONNX Runtime starts a telemetry thread at import. A process
# with threads must not fork (their locks may be held), so the zygote runs with neither; replicas
# inherit both (numpy's BLAS stays single-threaded; the model's own pools are sized per replica).
FORK_SAFETY_ENV = {"OPENBLAS_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "ZEROSERVE_THREADS")


class LimitError(RuntimeError):
    """A limit that cannot work for this replica (the message says which and why)."""


def thread_env(threads: int | None) -> dict[str, str]:
    if threads is None:
        return {}
    return {name: str(threads) for name in THREAD_ENV_VARS}


def address_space_bytes() -> int:
    """Current virtual size of this process (first field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def apply_memory_limit(memory_bytes: int) -> str | None:
    """Set RLIMIT_AS; returns a warning when the OS does not allow it, raises LimitError when too low."""
    try:
        in_use = address_space_bytes()
    except OSError:
        in_use = 0
    if memory_bytes <= in_use:
        raise LimitError(
            f"resources.memory ({memory_bytes >> 20} MiB) is below the address space the runtime maps before "
            f"loading the model ({in_use >> 20} MiB of virtual memory, shared libraries included); "
            "raise resources.memory"
        )
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError) as exc:
        return f"resources.memory not enforced: setrlimit(RLIMIT_AS) failed: {exc}"
    return None


def apply_thread_limit(threads: int | None) -> None:
    os.environ.update(thread_env(threads))
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None:
        # torch read OMP_NUM_THREADS when the zygote imported it; set the pool size explicitly.
        torch.set_num_threads(threads)
