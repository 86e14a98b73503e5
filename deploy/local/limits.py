"""The zygote's own thread limits, which make it safe to fork.

Per-replica limits (`resources.threads`, `resources.memory`) are applied in the replica by
`functions.isolation.confine`, the same code that confines a build's smoke child.
"""

from __future__ import annotations

# Set in the zygote before anything imports numpy or onnxruntime: OpenBLAS starts its thread pool at
# import unless told to use one thread, and ONNX Runtime starts a telemetry thread at import. A process
# with threads must not fork (their locks may be held), so the zygote runs with neither. Replicas get
# both in their environment too (numpy's BLAS stays single-threaded; the model's pools are sized per
# replica), since their environment is replaced, not inherited.
FORK_SAFETY_ENV = {"OPENBLAS_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}
