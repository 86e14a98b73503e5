"""Which revisions keep a warm template, within a memory budget: least recently used goes first.

A template (deploy.local.warm_template) holds its revision's loaded function, so a cold start forks a
replica that only has to listen. It costs the memory it does not share with the zygote (its
`private_bytes`, measured by the template after loading: the model, the session, the handler's state).
The supervisor asks for one when a revision is registered and whenever a start finds none; the pool
keeps the sum of their private memory within `budget_bytes` by stopping the least recently used ones.
A revision whose template cannot exist (load failed, the load started threads, bigger than the whole
budget) is remembered, with the reason, until it is registered with a different manifest.

Evicting a template retires it: it forks nothing more and exits once the replicas it forked (its
children) have; their pages are mostly the ones they share with it, so a retired template no longer
counts against the budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.local.launcher import LaunchError
from deploy.local.template_process import TemplateError, TemplateProcess

log = logging.getLogger("zeroserve.supervisor")

DEFAULT_BUDGET_BYTES = 512 << 20
TEMPLATE_READY_TIMEOUT = 120.0

StartTemplate = Callable[[str], Awaitable[TemplateProcess]]   # revision -> a template starting to load


@dataclass
class _Entry:
    key: str                      # what it loaded: a changed manifest or confinement needs a new one
    template: TemplateProcess | None = None   # None while it starts


@dataclass
class TemplateCounters:
    hits: int = 0                 # replica starts forked from a template
    misses: int = 0               # starts that found none ready (forked from the zygote instead)
    evictions: int = 0            # templates stopped to stay within the budget
    unavailable: dict[str, str] = field(default_factory=dict)   # revision -> why it has no template


class WarmTemplates:
    def __init__(self, budget_bytes: int, start: StartTemplate):
        self.budget_bytes = budget_bytes
        self._start = start
        self._entries: OrderedDict[str, _Entry] = OrderedDict()   # least recently used first
        self._unavailable_keys: dict[str, str] = {}               # revision -> the key that failed
        self.counters = TemplateCounters()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0 and not self._closed

    def want(self, revision: str, key: str) -> None:
        """Make sure `revision` has a template for `key` (or one starting); marks it recently used."""
        if not self.enabled:
            return
        entry = self._entries.get(revision)
        if entry is not None and entry.key == key:
            self._entries.move_to_end(revision)
            return
        if entry is not None:
            self.discard(revision)
        if self._unavailable_keys.get(revision) == key:
            return
        self._unavailable_keys.pop(revision, None)
        self.counters.unavailable.pop(revision, None)
        self._entries[revision] = _Entry(key)
        task = asyncio.ensure_future(self._create(revision, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def take(self, revision: str, key: str) -> TemplateProcess | None:
        """The revision's ready template for `key`, counted as a hit; None (a miss) when it has none."""
        if not self.enabled:
            return None
        entry = self._entries.get(revision)
        if entry is not None and entry.key == key and entry.template is not None and entry.template.usable:
            self._entries.move_to_end(revision)
            self.counters.hits += 1
            return entry.template
        self.counters.misses += 1
        return None

    def discard(self, revision: str) -> None:
        entry = self._entries.pop(revision, None)
        if entry is not None and entry.template is not None:
            entry.template.retire()

    def held_bytes(self) -> int:
        return sum(e.template.private_bytes for e in self._entries.values() if e.template is not None)

    def status(self) -> dict[str, Any]:
        """What `zeroserve status` and the metrics show."""
        ready = {revision: e.template for revision, e in self._entries.items()
                 if e.template is not None and e.template.usable}
        return {
            "budget_bytes": self.budget_bytes,
            "count": len(ready),
            "bytes": sum(t.private_bytes for t in ready.values()),
            "hits": self.counters.hits,
            "misses": self.counters.misses,
            "evictions": self.counters.evictions,
            "templates": [{"revision": revision, "pid": t.process.pid, "private_bytes": t.private_bytes,
                           "load_ms": t.load_ms} for revision, t in ready.items()],
            "unavailable": dict(self.counters.unavailable),
        }

    def revision_status(self, revision: str) -> dict[str, Any]:
        """One revision's template: ready (its pid and memory), starting, or none (and why, when known)."""
        entry = self._entries.get(revision)
        if entry is not None and entry.template is not None and entry.template.usable:
            return {"state": "ready", "pid": entry.template.process.pid, "private_bytes": entry.template.private_bytes,
                    "reason": None}
        if entry is not None:
            return {"state": "starting", "pid": None, "private_bytes": 0, "reason": None}
        reason = self.counters.unavailable.get(revision)
        if reason is None and not self.enabled:
            reason = "warm templates are off (--warm-templates-memory 0)"
        return {"state": "none", "pid": None, "private_bytes": 0, "reason": reason}

    async def _create(self, revision: str, key: str) -> None:
        try:
            template = await self._start(revision)
        except (LaunchError, TemplateError) as exc:
            self._give_up(revision, key, str(exc))
            return
        entry = self._entries.get(revision)
        if entry is None or entry.key != key or self._closed:  # discarded or replaced meanwhile
            template.retire()
            return
        entry.template = template
        try:
            await asyncio.wait_for(asyncio.shield(template.ready), TEMPLATE_READY_TIMEOUT)
        except (TemplateError, TimeoutError) as exc:
            template.retire()
            if self._entries.get(revision) is entry:
                del self._entries[revision]
                self._give_up(revision, key, str(exc) or f"not ready in {TEMPLATE_READY_TIMEOUT:.0f}s")
            return
        template.process.exited.add_done_callback(lambda _: self._on_exit(revision, template))
        if template.private_bytes > self.budget_bytes:
            self.discard(revision)
            self._give_up(revision, key, f"it holds {template.private_bytes >> 20} MiB, more than the whole "
                                         f"budget ({self.budget_bytes >> 20} MiB, --warm-templates-memory)")
            return
        log.info("revision %s: warm template ready (pid %d, %.0f ms, %.1f MiB of its own)", revision,
                 template.process.pid, template.load_ms, template.private_bytes / (1 << 20))
        self._evict_over_budget(keep=revision)

    def _evict_over_budget(self, keep: str) -> None:
        for revision in list(self._entries):
            if self.held_bytes() <= self.budget_bytes:
                return
            if revision != keep and self._entries[revision].template is not None:
                log.info("revision %s: warm template stopped to stay within %d MiB (least recently used)",
                         revision, self.budget_bytes >> 20)
                self.discard(revision)
                self.counters.evictions += 1

    def _on_exit(self, revision: str, template: TemplateProcess) -> None:
        entry = self._entries.get(revision)
        if entry is not None and entry.template is template:
            del self._entries[revision]  # died (or was stopped): the next start asks for a new one

    def _give_up(self, revision: str, key: str, reason: str) -> None:
        if self._entries.get(revision) is not None and self._entries[revision].key == key:
            del self._entries[revision]
        self._unavailable_keys[revision] = key
        self.counters.unavailable[revision] = reason
        log.info("revision %s: no warm template (%s); its replicas load the function themselves", revision, reason)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for revision in list(self._entries):
            self.discard(revision)
