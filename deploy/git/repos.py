"""The function repositories: one bare git repository per function, DATA/git/<fn>.git.

A repository is created on the first push (initialised in a temp dir, then renamed into place, so two
first pushes racing each other see one complete repository). Its configuration is what the remote
relies on: push options advertised (`git push -o traffic=10`), pushed objects checked (`fsckObjects`),
only the smart protocol served, and the pre-receive hook that hands every push to the platform.

Every git command runs with an isolated configuration (no system or global config, no prompts), so
what the user of the server machine has in ~/.gitconfig (hooksPath, url rewrites, credential helpers)
cannot change how the platform treats a push.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from protocol.manifest import check_dns1035

HOOK_SCRIPT = Path(__file__).resolve().with_name("pre_receive.py")
# Settings every function repository carries (git config key -> value).
REPOSITORY_CONFIG = {
    "receive.advertisePushOptions": "true",  # the hook reads GIT_PUSH_OPTION_n
    "receive.fsckObjects": "true",  # a malformed pushed object is refused before any hook runs
    "http.receivepack": "true",  # pushes are authenticated by the remote, not by REMOTE_USER
    "http.uploadpack": "true",
    "http.getanyfile": "false",  # no dumb-HTTP file access: only the smart protocol
    "core.logAllRefUpdates": "true",  # a reflog of every deploy-branch update, for forensics
}


class RepositoryError(ValueError):
    """A function name that cannot name a repository, or a repository git could not create."""


def git_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without GIT_* variables, with git's configuration isolated."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"})
    env.update(extra or {})
    return env


def is_zero_id(object_id: str) -> bool:
    """git's "no object" id (ref creation or deletion), for SHA-1 and SHA-256 repositories alike."""
    return bool(object_id) and set(object_id) == {"0"}


def hook_text(python: str = sys.executable, script: Path = HOOK_SCRIPT) -> str:
    # -I -S: the hook is stdlib-only; no site packages, no PYTHON* variables, no user directory.
    return (
        "#!/bin/sh\n"
        "# Installed by zeroserve: hands the push to the platform that received it\n"
        "# (deploy/git/pre_receive.py); rewritten on every push.\n"
        f"exec {shlex.quote(python)} -I -S {shlex.quote(str(script))}\n"
    )


class Repositories:
    def __init__(self, root: Path, deploy_branch: str = "main"):
        self.root = Path(root)
        self.deploy_branch = deploy_branch

    @property
    def deploy_ref(self) -> str:
        return f"refs/heads/{self.deploy_branch}"

    def path_for(self, function: str) -> Path:
        """root/<fn>.git; the name is a DNS-1035 label, so it can never leave the root."""
        try:
            check_dns1035(function, "function")
        except ValueError as exc:
            raise RepositoryError(str(exc)) from None
        return self.root / f"{function}.git"

    def exists(self, function: str) -> bool:
        return (self.path_for(function) / "HEAD").is_file()

    def ensure(self, function: str) -> Path:
        """The function's repository, created if missing; its hook is (re)installed either way.

        Blocking (runs git); call it off the event loop.
        """
        path = self.path_for(function)
        if not (path / "HEAD").is_file():
            self._create(path)
        self.install_hook(path)
        return path

    def _create(self, path: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=self.root))
        try:
            self._git(staging, "init", "--quiet", "--bare", f"--initial-branch={self.deploy_branch}", ".")
            for key, value in REPOSITORY_CONFIG.items():
                self._git(staging, "config", key, value)
            # The hooks git's templates put there (all samples) are noise in a platform-owned repository.
            shutil.rmtree(staging / "hooks", ignore_errors=True)
            (staging / "hooks").mkdir()
            staging.chmod(0o755)
            try:
                staging.rename(path)
            except OSError:
                if not (path / "HEAD").is_file():  # not "another push created it first": a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def install_hook(self, path: Path) -> None:
        """Write hooks/pre-receive unless it already says exactly this (the interpreter may have moved)."""
        hook = path / "hooks" / "pre-receive"
        text = hook_text()
        try:
            if hook.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        hook.parent.mkdir(exist_ok=True)
        staging = hook.with_name(f".pre-receive-{os.getpid()}")
        staging.write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        staging.replace(hook)

    def read_ref(self, path: Path, ref: str) -> str | None:
        """The object id `ref` points at now, or None if it does not exist."""
        result = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--verify", "--quiet", "--end-of-options", ref],
            capture_output=True, env=git_environment(), stdin=subprocess.DEVNULL, check=False,
        )
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    @staticmethod
    def _git(cwd: Path, *args: str) -> None:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=git_environment(),
                                stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            why = result.stderr.decode("utf-8", "replace").strip()
            raise RepositoryError(f"git {args[0]} failed in {cwd.name}: {why}")


__all__ = ["HOOK_SCRIPT", "REPOSITORY_CONFIG", "Repositories", "RepositoryError", "git_environment",
           "hook_text", "is_zero_id"]
