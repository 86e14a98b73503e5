"""Test harness: a real `zeroserve up` subprocess on a free 127.0.0.1 port, the real CLI, function dirs."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import yaml

from zeroserve.client import ControlClient

REPO = Path(__file__).resolve().parents[3]
IRIS = REPO / "examples" / "iris"
READY_TIMEOUT = 60.0


class PlatformProcess:
    """`python -m zeroserve.cli up --port 0 --data DIR`, with its URL read from the ready line."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.extra_env = dict(env or {})  # e.g. ZEROSERVE_QUEUE_LIMIT for this platform only
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self) -> PlatformProcess:
        self.output = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zeroserve.cli", "up", "--port", "0", "--data", str(self.data_dir)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(**self.extra_env),
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, lines), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"zeroserve up exited early:\n{''.join(self.output)}")
            if line.startswith("zeroserve ready at "):
                self.url = line.split()[3]
                return self
        self.kill9()
        raise AssertionError(f"zeroserve up not ready within {READY_TIMEOUT}s:\n{''.join(self.output)}")

    def _pump(self, proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def client(self, token: str | None = None) -> ControlClient:
        return ControlClient(self.url, token if token is not None else self.token, timeout=60)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill9()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(platform: PlatformProcess, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI as a user runs it: server and token found from ZEROSERVE_URL and the data dir."""
    env = _env(ZEROSERVE_URL=platform.url, ZEROSERVE_DATA=str(platform.data_dir))
    command = [sys.executable, "-m", "zeroserve.cli", *args]
    if token is not None:
        command += ["--token", token]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def function_dir(tmp_path: Path, name: str, source: Path = IRIS, **manifest_changes: object) -> Path:
    """A copy of an example under a new function name, with manifest keys changed."""
    dest = tmp_path / f"{name}-{time.monotonic_ns()}"
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "make_model.py"))
    manifest = yaml.safe_load((dest / "function.yaml").read_text())
    manifest["name"] = name
    manifest.update(manifest_changes)
    (dest / "function.yaml").write_text(yaml.safe_dump(manifest))
    return dest


def change_model(directory: Path, note: str) -> None:
    """Same graph, different bytes: a new model as far as the digest is concerned."""
    import onnx

    model = onnx.load(directory / "model.onnx")
    model.doc_string = note
    onnx.save(model, directory / "model.onnx")


SLOW_HANDLER = textwrap.dedent('''
    """load() blocks until a gate file exists, so a test can hold a build in its smoke step."""
    import os
    import time

    import numpy as np


    class Slow:
        inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}]
        outputs = [{"name": "output", "datatype": "FP32", "shape": [-1, -1]}]

        def load(self):
            gate = os.environ["GATE"]
            if os.path.exists(gate + ".pid"):  # a replica's or a build's: functions may run as other users
                os.unlink(gate + ".pid")
            with open(gate + ".pid", "w") as handle:
                handle.write(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    raise RuntimeError("gate never opened")
                time.sleep(0.05)

        def predict(self, inputs):
            return {"output": inputs["input"]}
''')


def slow_function_dir(tmp_path: Path, name: str, gate: Path, version: str) -> Path:
    dest = tmp_path / f"{name}-{version}"
    dest.mkdir()
    (dest / "handler.py").write_text(SLOW_HANDLER + f"\nVERSION = {version!r}\n")
    (dest / "sample.json").write_text(
        '{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}')
    (dest / "function.yaml").write_text(yaml.safe_dump(
        {"name": name, "handler": "handler:Slow", "sample": "sample.json", "env": {"GATE": str(gate)}}))
    return dest
