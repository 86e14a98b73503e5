"""The pre-receive hook of every function repository: hand the push to the platform, print its answer.

Runs as `python -I -S pre_receive.py` (standard library only, started fresh for each push), with git's
quarantine in its environment: the pushed objects are readable only through GIT_OBJECT_DIRECTORY and
GIT_ALTERNATE_OBJECT_DIRECTORIES until this hook says yes. So the hook does not build anything itself;
it sends the ref updates, the push options and those variables over the Unix socket the platform
opened for this very push (ZEROSERVE_HOOK_SOCKET, set by the remote when it started `git
http-backend`), and the platform builds and records the commit on its one deploy path, under the
function's deploy lock. Every line the platform sends back is printed to stderr at once, which git
relays to the pusher as a `remote:` line while the build runs. The exit status is the platform's
verdict: non-zero rejects the push, and git then updates no ref.

Protocol: one JSON request line -> JSON lines {"line": text}... then {"exit": status}.
"""

from __future__ import annotations

import json
import os
import socket
import sys

# git's quarantine: where the pushed objects are until the push is accepted.
QUARANTINE_VARIABLES = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")
SOCKET_VARIABLE = "ZEROSERVE_HOOK_SOCKET"


def read_updates(text: str) -> list[dict[str, str]]:
    """git's stdin for pre-receive: one "<old-id> <new-id> <ref>" line per ref the push updates."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append({"old": parts[0], "new": parts[1], "ref": parts[2]})
    return updates


def read_push_options(environ: dict[str, str]) -> list[str] | None:
    """`git push -o X` values; None when the client sent none (GIT_PUSH_OPTION_COUNT unset)."""
    count = environ.get("GIT_PUSH_OPTION_COUNT")
    if count is None or not count.isdigit():
        return None
    return [environ.get(f"GIT_PUSH_OPTION_{index}", "") for index in range(int(count))]


def quarantine_environment(environ: dict[str, str], cwd: str) -> dict[str, str]:
    """The quarantine variables with absolute paths (git may give them relative to the repository)."""
    env = {}
    for name in QUARANTINE_VARIABLES:
        value = environ.get(name)
        if not value:
            continue
        if name == "GIT_ALTERNATE_OBJECT_DIRECTORIES":
            value = os.pathsep.join(os.path.join(cwd, part) for part in value.split(os.pathsep) if part)
        else:
            value = os.path.join(cwd, value)
        env[name] = value
    return env


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    path = os.environ.get(SOCKET_VARIABLE)
    if not path:
        say("zeroserve: this repository accepts pushes only through the platform's git remote "
            "(http://HOST:PORT/git/<function>.git); push rejected")
        return 1
    request = {
        "updates": read_updates(sys.stdin.read()),
        "push_options": read_push_options(dict(os.environ)),
        "git_env": quarantine_environment(dict(os.environ), os.getcwd()),
    }
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path)
    except OSError as exc:
        say(f"zeroserve: cannot reach the platform for this push ({exc.strerror}); push rejected")
        return 1
    with connection, connection.makefile("rb") as answers:
        connection.sendall(json.dumps(request).encode() + b"\n")
        for raw in answers:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if "line" in message:
                say(str(message["line"]))
            elif "exit" in message:
                return int(message["exit"])
    say("zeroserve: the platform stopped answering before deciding; push rejected")
    return 1


if __name__ == "__main__":
    sys.exit(main())
