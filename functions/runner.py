"""Runs a loaded function off the event loop, through the dynamic batcher when one applies."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from functions.batcher import DynamicBatcher
from functions.loaders import LoadedFunction
from protocol.inference_errors import InferenceError, InferenceFailed, Unavailable
from protocol.manifest import Batching

log = logging.getLogger("zeroserve.functions")

# Unbatched requests waiting for the model thread beyond this are refused with 503, so a flood
# fails fast instead of growing memory without bound (the batcher has max_queue for the same).
DEFAULT_MAX_PENDING = 1024


class ModelRunner:
    """One model instance: a single worker thread, so user code never runs concurrently with itself.

    Batching applies when the manifest asks for it and every input has a dynamic first dimension;
    otherwise requests run one by one in arrival order.
    """

    def __init__(self, function: LoadedFunction, model: str, batching: Batching | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING):
        self.function = function
        self.model = model
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{model}")
        self.max_pending = batching.max_queue if batching is not None else max_pending
        self._pending = 0
        self.batcher: DynamicBatcher | None = None
        if batching is not None:
            if function.metadata.batchable:
                self.batcher = DynamicBatcher(self.run, max_batch_size=batching.max_batch_size,
                                              max_delay_ms=batching.max_delay_ms,
                                              max_queue=batching.max_queue, model=model)
            else:
                log.warning("model '%s': batching is configured but not every input has a dynamic first "
                            "dimension (-1); requests run unbatched", model)

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validated inputs -> outputs; raises InferenceError subclasses only."""
        if self.batcher is not None:
            return await self.batcher.submit(inputs)
        if self._pending >= self.max_pending:
            raise Unavailable(f"model '{self.model}' is overloaded: {self._pending} requests waiting; retry later")
        self._pending += 1
        try:
            return await self.run(inputs)
        finally:
            self._pending -= 1

    async def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One model call in the model thread (what the batcher calls per batch), in the caller's context:
        the handler sees the request's id and traceparent (functions.request_context)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, self._predict, inputs)

    def _predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.function.predict(inputs)
        except InferenceError:
            raise
        except Exception as exc:
            # Logged with the trace here; the client gets the exception's type and message only.
            log.exception("model '%s': %s raised", self.model, self.function.source)
            raise InferenceFailed(f"{self.function.source} raised {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.function.close()
