"""`zeroserve init NAME`: a function repository ready to `git push`.

    zeroserve init iris2 --template onnx     # function.yaml, model.onnx, sample.json, README.md
    cd iris2 && git add -A && git commit -m "first revision" && git push zeroserve main

The directory gets git initialised on the deploy branch and a remote named `zeroserve` pointing at
the platform's git remote (server from --server / ZEROSERVE_URL), with no secret in its URL. With the
operator's token at hand (--token, ZEROSERVE_TOKEN or the local data dir), init creates a *deploy*
token for this function only and hands it to git through a credential helper
(zeroserve/commands/git_credential.py): the admin token never enters the repository, and
`.git/config` and `git remote -v` show no secret.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from zeroserve.client import resolve_server, resolve_token
from zeroserve.commands.connection import DataOption, ServerOption, TokenOption, console, fail
from zeroserve.commands.git_credential import CREDENTIALS_FILE, git_common_dir, helper_command, save_credentials

REMOTE_NAME = "zeroserve"


class Template(StrEnum):
    onnx = "onnx"
    python = "python"


def init(
    name: Annotated[str, typer.Argument(help="Function name (a DNS-1035 label); also the directory's name")],
    template: Annotated[Template, typer.Option("--template", help="onnx: a model; python: a handler")] = (
        Template.onnx),
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to create it [default ./NAME]",
                                                   show_default=False)] = None,
    branch: Annotated[str, typer.Option("--branch", help="The platform's deploy branch")] = "main",
    server: ServerOption = None,
    token: TokenOption = None,
    data: DataOption = None,
) -> None:
    """Scaffold a function repository (function.yaml, model or handler, sample, README) and its remote."""
    from protocol.manifest import check_dns1035  # pydantic: only when the command runs, not for --help

    try:
        check_dns1035(name, "function name")
    except ValueError as exc:
        fail(str(exc))
    target = directory if directory is not None else Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        fail(f"{target}: already exists and is not an empty directory")
    base = resolve_server(server)
    operator_token = resolve_token(token, data)
    remote_url = git_remote_url(base, name)
    files = scaffold(target, name, template, base, branch)
    _git(target, "init", "--quiet", f"--initial-branch={branch}")
    _git(target, "remote", "add", REMOTE_NAME, remote_url)
    out = console()
    out.print(f"created {target}/ ({template.value}): {', '.join(sorted(files))}", markup=False)
    out.print(f"git remote {REMOTE_NAME} -> {remote_url}", markup=False)
    deploy_token, about = _deploy_token(base, operator_token, name)
    if deploy_token is not None:
        _hand_to_git(target, remote_url, deploy_token)
        out.print(f"{about}; git gets it from .git/{CREDENTIALS_FILE} (0600) through a credential helper",
                  markup=False)
    else:
        out.print(f"{about}; git will ask for a token (any user name; as the password a deploy token: "
                  f"zeroserve token create --function {name} --scope deploy)", markup=False)
    out.print("next:", markup=False)
    commit = "git add -A && git commit -m 'first revision'"
    out.print(f"  cd {target} && {commit} && git push {REMOTE_NAME} {branch}", markup=False)
    out.print(f"  zeroserve invoke {name}", markup=False)


def git_remote_url(server: str, function: str) -> str:
    """http://host:port/git/<fn>.git: never with credentials (any user:password in `server` is dropped)."""
    parts = urlsplit(server.rstrip("/"))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme or "http", netloc, f"{parts.path}/git/{function}.git", "", ""))


def _deploy_token(server: str, operator_token: str | None, function: str) -> tuple[str | None, str]:
    """(a token for git to push `function` with, what to tell the user about it)."""
    if operator_token is None:
        return None, "no API token found (--token, ZEROSERVE_TOKEN or --data), so no deploy token was made"
    from zeroserve.client import ApiError, ControlClient

    try:
        with ControlClient(server, operator_token) as client:
            created = client.create_token("deploy", [function])
    except ApiError as exc:
        if exc.status == 403:  # a scoped token cannot make tokens: it is what git will use (e.g. in CI)
            return operator_token, f"the token given cannot create tokens ({exc.message}), so git uses it as it is"
        return None, f"could not create a deploy token: {exc.message}"
    return created["token"], f"deploy token {created['name']} (scope deploy: {function}) created"


def _hand_to_git(target: Path, remote_url: str, secret: str) -> None:
    """The token in .git/zeroserve-credentials, and a credential helper for the platform's URL only."""
    parts = urlsplit(remote_url)
    git_dir = git_common_dir(target.resolve())
    if git_dir is None:
        fail(f"{target}: git rev-parse found no repository")
    save_credentials(git_dir, parts.scheme, parts.netloc, secret)
    key = f"credential.{parts.scheme}://{parts.netloc}.helper"
    _git(target, "config", key, "")  # empty first: no helper from the user's global config sees this token
    _git(target, "config", "--add", key, helper_command())


def scaffold(target: Path, name: str, template: Template, server: str, branch: str) -> list[str]:
    """Write the function's files; returns their names."""
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "function.yaml": _manifest(name, template).encode(),
        "README.md": _readme(name, template, server, branch).encode(),
        ".gitignore": b"__pycache__/\n*.pyc\n.DS_Store\n",
    }
    if template is Template.onnx:
        files["model.onnx"] = onnx_model_bytes()
        files["sample.json"] = _sample("input", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    else:
        files["handler.py"] = HANDLER.encode()
        files["sample.json"] = _sample("input", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for relative, content in files.items():
        (target / relative).write_bytes(content)
    return list(files)


def onnx_model_bytes() -> bytes:
    """A small linear classifier (4 features -> 3 class probabilities) with fixed weights: a starting point
    to replace with your own model.onnx."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[-0.6, 0.1, 0.5], [1.2, -0.3, -0.9], [-1.5, 0.4, 1.1], [-1.4, -0.2, 1.6]],
                       dtype=np.float32)
    bias = np.array([3.0, 1.5, -4.5], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits_raw"]),
         helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    # IR 8 / opset 17, as the examples: loadable by every ONNX Runtime this project supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="zeroserve init")
    return model.SerializeToString()


HANDLER = '''\
"""The function's code: the runtime creates Model(), calls load() once, then predict() per request.

`inputs`/`outputs` declare what the V2 metadata endpoint reports and requests are checked against.
"""

from __future__ import annotations

import numpy as np


class Model:
    inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}]
    outputs = [{"name": "output", "datatype": "FP32", "shape": [-1, -1]}]

    def load(self) -> None:
        # Anything slow (reading weights, warming caches) belongs here, not in predict().
        self.scale = np.float32(2.0)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output": inputs["input"] * self.scale}
'''


def _manifest(name: str, template: Template) -> str:
    runtime = ("runtime: onnx\nmodel: model.onnx\n" if template is Template.onnx
               else "runtime: python\nhandler: handler:Model\n")
    return textwrap.dedent(f"""\
        # {name}: a zeroserve function. Every push to the deploy branch builds a new immutable revision.
        name: {name}
        """) + runtime + textwrap.dedent("""\
        sample: sample.json          # the request the build's smoke inference sends
        scaling:
          min_scale: 0               # scale to zero when idle
          max_scale: 4
          target: 10                 # concurrent requests per replica
        traffic:
          percent: 100               # share the new revision gets (per push: git push -o traffic=10)
        """)


def _sample(input_name: str, rows: list[list[float]]) -> bytes:
    request = {"inputs": [{"name": input_name, "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                           "data": rows}]}
    return (json.dumps(request, indent=2) + "\n").encode()


def _readme(name: str, template: Template, server: str, branch: str) -> str:
    base = server.rstrip("/")
    what = "an ONNX model (model.onnx)" if template is Template.onnx else "a Python handler (handler.py)"
    return textwrap.dedent(f"""\
        # {name}

        A zeroserve function: {what}, served at a function URL that scales to zero.

        ## Deploy

            git add -A && git commit -m "first revision"
            git push {REMOTE_NAME} {branch}

        The build streams back as `remote:` lines (manifest, files, smoke inference, digest, store,
        traffic), then the new revision, the traffic split and the function's URLs. A failed build
        rejects the push and changes nothing. Pushes to other branches are stored, not deployed.

        Per-push traffic policy (overrides `traffic:` in function.yaml):

            git push -o traffic=10 -o tag=canary {REMOTE_NAME} {branch}   # 10 % to the new revision
            git push -o rollout=5m {REMOTE_NAME} {branch}                  # move traffic over 5 minutes

        The remote is `{base}/git/{name}.git`. `zeroserve init` made a deploy token for {name} (it can
        push and change the traffic of this function only) and handed it to git through a credential
        helper; the URL and `.git/config` hold no secret. Another machine (CI, say) needs a token of its
        own: `zeroserve token create --function {name} --scope deploy`, used as the password.

        ## Call it

            zeroserve invoke {name}             # sends sample.json; prints the outputs, revision, time, cold start
            curl -s -d @sample.json {base}/fn/{name}/v2/models/{name}/infer

        (also at `http://{name}.localhost:PORT/` on a local platform.)
        """)


def _git(cwd: Path, *args: str) -> None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        fail("git is not installed; install it to push functions")
    if result.returncode != 0:
        fail(f"git {args[0]} failed: {result.stderr.strip()}")
