"""`resources.threads` and `resources.memory` for one function process.

Threads: the runtime sizes ONNX Runtime's intra-op pool and torch's from `resources.threads` itself;
the variables here cover the libraries that read their own (OpenMP, MKL, numexpr) and handler code.

Memory: RLIMIT_DATA, set to what the process has mapped for data when it is confined (for a replica,
the zygote's ~125 MiB of imported runtime) plus `resources.memory`. So the function may allocate
`resources.memory` of its own: model, session, buffers, thread stacks. RLIMIT_DATA counts private
writable mappings, which is what allocations are; RLIMIT_AS would also count the shared libraries
(~100 MiB more than data in a replica) and every reservation glibc and ONNX Runtime make but never
touch (64 MiB per malloc arena), so a limit that works would have to be far above what is used.
An allocation past the limit fails at once (MemoryError in Python, std::bad_alloc in ONNX Runtime);
the replica then exits with OUT_OF_MEMORY_EXIT_CODE and the supervisor reports "out of memory: <limit>".
cgroup v2 `memory.max` would charge only the pages a replica touches; it needs a delegated cgroup
subtree, which a plain process (this sandbox, most containers) does not have.
"""

from __future__ import annotations

import resource
import sys

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "ZEROSERVE_THREADS")
# What a replica exits with when its function ran out of memory (the supervisor reports the limit).
# 137 is what a container killed by the kernel's OOM killer reports (128 + SIGKILL); operators know it.
OUT_OF_MEMORY_EXIT_CODE = 137
# How C++ runtimes word a failed allocation when it reaches Python as some other exception type.
_ALLOCATION_FAILURES = ("bad_alloc", "bad allocation", "Failed to allocate memory")


class LimitError(RuntimeError):
    """A limit that cannot work for this process (the message says which and why)."""


def thread_env(threads: int | None) -> dict[str, str]:
    if threads is None:
        return {}
    return {name: str(threads) for name in THREAD_ENV_VARS}


def apply_thread_limit(threads: int | None) -> None:
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None:
        # torch read OMP_NUM_THREADS when the zygote imported it; set the pool size explicitly.
        torch.set_num_threads(threads)


def data_size_bytes() -> int:
    """What this process has mapped for data now (VmData: heap and private writable mappings)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/self/status has no VmData line")


def apply_memory_limit(memory_bytes: int) -> tuple[int | None, str | None]:
    """Set RLIMIT_DATA to what is mapped now + `memory_bytes`; returns (the limit, or None, and a warning)."""
    try:
        limit = data_size_bytes() + memory_bytes
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError) as exc:
        return None, f"resources.memory not enforced: setrlimit(RLIMIT_DATA) failed: {exc}"
    return limit, None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a failed allocation, also when a runtime wrapped it (ONNX Runtime, a handler's LoadError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or any(text in str(current) for text in _ALLOCATION_FAILURES):
            return True
        current = current.__cause__ or current.__context__
    return False


def out_of_memory_message(memory: str | None) -> str:
    """The reason operators see in status, events and failed requests."""
    return f"out of memory: {memory}" if memory else "out of memory"
