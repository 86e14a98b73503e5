"""Processes the platform starts (zygotes, build smoke children), recorded so a restart can sweep them.

Each such process leads its own process group (`start_new_session`), and replicas forked by a zygote
stay in the zygote's group, as does anything a handler spawns. PR_SET_PDEATHSIG takes the processes
themselves down with the platform; what it cannot reach (a handler's own child processes, which
inherit no death signal) is still in the recorded group. `sweep()` at start-up kills every group a
previous run recorded and did not remove.

A record is `<dir>/<pid>.json`: pid, start time (clock ticks after boot, /proc/<pid>/stat field 22)
and boot id. A recorded group is killed only when its leader is that very process (same start time,
same boot), or, with the leader gone, only its members started after it: a pid reused since is never
mistaken for ours.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("zeroserve.orphans")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    pgid: int
    start_time: int


def process_info(pid: int) -> ProcessInfo | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state): pgid is field 5, starttime field 22.
    if fields[0] in ("Z", "X"):
        return None
    return ProcessInfo(pid, int(fields[2]), int(fields[19]))


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


class ProcessRecords:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def add(self, pid: int, role: str) -> None:
        """Record a process that leads its own group and must not outlive the platform."""
        info = process_info(pid)
        if info is None:
            return  # already gone
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {"pid": pid, "start_time": info.start_time, "boot_id": boot_id(), "role": role}
        path = self.directory / f"{pid}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)

    def remove(self, pid: int) -> None:
        (self.directory / f"{pid}.json").unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        """Kill what a previous run left; returns a line per group killed (for the log)."""
        killed: list[str] = []
        if not self.directory.is_dir():
            return killed
        this_boot = boot_id()
        groups: dict[int, list[ProcessInfo]] = {}
        records = sorted(self.directory.glob("*.json"))
        if records:
            for entry in os.listdir("/proc"):
                if entry.isdigit() and (info := process_info(int(entry))) is not None:
                    groups.setdefault(info.pgid, []).append(info)
        for path in records:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                pid, started = int(record["pid"]), int(record["start_time"])
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if record.get("boot_id") == this_boot and pid != os.getpid():
                members = groups.get(pid, [])
                leader = process_info(pid)
                if leader is not None and leader.start_time != started:
                    members = []  # the pid belongs to another process now; its group is not ours
                members = [m for m in members if m.start_time >= started]
                for member in members:
                    try:
                        os.kill(member.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if members:
                    killed.append(f"{record.get('role', 'process')} group {pid}: {len(members)} process(es)")
            path.unlink(missing_ok=True)
        for line in killed:
            log.warning("killed what a previous run left running: %s", line)
        return killed
