"""The real `git` client, as a user runs it against the platform: work trees, pushes, streamed pushes."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.zeroserve.control.harness import PlatformProcess

PUSH_TIMEOUT = 120.0


def git_env(home: Path | None = None) -> dict[str, str]:
    """No system or user config (no credential helper, no hooksPath), no prompts, a fixed identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ZEROSERVE_"))}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C",
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    })
    if home is not None:
        env["HOME"] = str(home)
    return env


def git(cwd: Path, *args: str, check: bool = True, timeout: float = PUSH_TIMEOUT, input_text: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd`; `input_text` is its stdin (else none), `env` overrides git_env()'s variables."""
    stdin = {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run(["git", *args], cwd=cwd, env={**git_env(), **(env or {})}, capture_output=True,
                            text=True, timeout=timeout, check=False, **stdin)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        output = result.stdout + result.stderr
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n{output}")
    return result



def remote_url(platform: PlatformProcess, function: str, token: str | None = "platform") -> str:
    """http://x:TOKEN@127.0.0.1:PORT/git/<fn>.git; token=None: no credentials."""
    host = platform.url.removeprefix("http://")
    if token is None:
        return f"http://{host}/git/{function}.git"
    secret = platform.token if token == "platform" else token
    return f"http://x:{secret}@{host}/git/{function}.git"


def ls_remote(url: str, cwd: Path) -> dict[str, str]:
    result = git(cwd, "ls-remote", url)
    refs = {}
    for line in result.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        refs[ref] = sha
    return refs


class WorkRepo:
    """A function directory under git, as a developer has it."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def from_dir(cls, source: Path, dest: Path, message: str = "first revision") -> WorkRepo:
        if source != dest:
            shutil.copytree(source, dest)
        git(dest, "init", "--quiet", "--initial-branch=main")
        repo = cls(dest)
        repo.commit(message)
        return repo

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").stdout.strip()

    def push(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        return git(self.path, "push", *args, url, "HEAD:main", check=False)


class StreamedPush:
    """`git push` in the background, its output read line by line as git prints it."""

    def __init__(self, repo: WorkRepo, url: str, *args: str, refspec: str = "HEAD:main"):
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(["git", "push", *args, url, refspec], cwd=repo.path, env=git_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("expected line never came; git printed:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float = PUSH_TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
