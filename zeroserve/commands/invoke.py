"""`zeroserve invoke FN`: one request to a function's URL, and what answered it.

    zeroserve invoke iris                                   # the function's sample request (V2)
    zeroserve invoke iris --data @examples/iris/sample.json
    zeroserve invoke iris --tag canary --protocol v1

Prints the response (a V2 answer as a short table of its outputs), the revision that answered (the
`zeroserve-revision` header), the time the request took, and whether it was a cold start (the
activator's `zeroserve-cold-start` header: the request found no replica and waited for one to start).

The request goes to the function URL, not the control API, so an invoke token is all it needs; the
token (--token, ZEROSERVE_TOKEN, else DATA/token) is sent as a bearer token and the activator keeps
any platform token away from the function's code.

With neither --data nor --sample, the sample is sent. The sample is the one in the current directory's
function.yaml when it names FN (its `sample`, else sample.json: what `zeroserve init` scaffolds),
else zeros shaped by the model's V2 metadata.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zeroserve.client import _tls_verification, error_message, resolve_server, resolve_token
from zeroserve.commands.connection import JsonOption, ServerOption, TokenOption, console, fail, print_json

if TYPE_CHECKING:
    import httpx

REVISION_HEADER = "zeroserve-revision"
COLD_START_HEADER = "zeroserve-cold-start"
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_SAMPLE_VALUES = 1_000_000  # zeros generated from metadata; more is not a sample
PREVIEW_VALUES = 6  # values of an output shown in the table


class Protocol(StrEnum):
    v1 = "v1"
    v2 = "v2"


def invoke(
    function: Annotated[str, typer.Argument(help="Function name")],
    data: Annotated[str | None, typer.Option(
        "--data", help="The request: @FILE.json, @- for stdin, or the JSON itself", show_default=False)] = None,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Send the function's sample request (the default without --data)")] = False,
    tag: Annotated[str | None, typer.Option("--tag", help="Call this tag's revision (tag URL)",
                                            show_default=False)] = None,
    protocol: Annotated[Protocol | None, typer.Option(
        "--protocol", help="v1 (KServe :predict) or v2 (Open Inference /infer) [default: from the request, "
                           "else v2]", show_default=False)] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the answer")] = 310.0,
    server: ServerOption = None,
    token: TokenOption = None,
    data_dir: Annotated[str | None, typer.Option(
        "--data-dir", help="Local data dir holding the token [env ZEROSERVE_DATA; default ./.zeroserve]",
        show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Call a function at its URL: prints the response, the revision that answered, the time, cold or warm."""
    import httpx

    for value, what in ((function, "function"), (tag, "--tag")):
        if value is not None and not _NAME.match(value):
            fail(f"{what} '{value[:64]}' must be a DNS-1035 label (lower-case letters, digits and '-')")
    if data is not None and sample:
        fail("give --data or --sample, not both")
    base = f"{resolve_server(server)}/fn/{f'{tag}-{function}' if tag else function}"
    secret = resolve_token(token, data_dir)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    cold = False
    with httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10),
                      verify=_tls_verification(base)) as http:
        try:
            if data is not None:
                body = _read_data(data)
                chosen = protocol or _protocol_of(body)
                where = "--data"
            else:
                body, where, cold = _sample(http, base, function)
                chosen = protocol or Protocol.v2
            if chosen is Protocol.v1 and _is_v2_request(body):
                body = v1_request(body)
            path = f"/v1/models/{function}:predict" if chosen is Protocol.v1 else f"/v2/models/{function}/infer"
            started = time.perf_counter()
            response = http.post(base + path, json=body)
            elapsed = time.perf_counter() - started
        except httpx.HTTPError as exc:
            fail(f"cannot reach {base}: {exc}")
    cold = cold or response.headers.get(COLD_START_HEADER) == "true"
    _report(response, function, chosen, elapsed, cold, where, as_json)


def _read_data(data: str) -> Any:
    if data.startswith("@"):
        source = data[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--data {data}: cannot read it: {getattr(exc, 'strerror', None) or exc}")
    else:
        source, text = "the --data value", data
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"--data: {source} is not JSON: {exc}")


def _protocol_of(body: Any) -> Protocol:
    """V1 when the request has V1's shape (`instances`, or columnar `inputs` that are not V2 tensors)."""
    if isinstance(body, dict) and ("instances" in body or ("inputs" in body and not _is_v2_request(body))):
        return Protocol.v1
    return Protocol.v2


def _is_v2_request(body: Any) -> bool:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(t, dict) and "data" in t for t in inputs)


# --------------------------------------------------------------------------------------------- samples

def _sample(http: httpx.Client, base: str, function: str) -> tuple[dict[str, Any], str, bool]:
    """(the sample request, where it came from, whether getting it woke the function from zero)."""
    local = local_sample(Path.cwd(), function)
    if local is not None:
        return local
    response = http.get(f"{base}/v2/models/{function}")
    if response.status_code != 200:
        fail(f"function '{function}': no sample here (no ./function.yaml naming it) and its metadata answered "
             f"HTTP {response.status_code}: {error_message(response)}; pass --data @request.json")
    try:
        request = zeros_request(response.json(), function)
    except ValueError as exc:
        fail(f"{exc}; pass --data @request.json")
    return request, "zeros shaped by the model's metadata", response.headers.get(COLD_START_HEADER) == "true"


def local_sample(directory: Path, function: str) -> tuple[dict[str, Any], str, bool] | None:
    """The sample of ./function.yaml when it names `function` (its `sample`, else sample.json)."""
    from protocol.manifest import ManifestError, check_relative_path, load_yaml, read_manifest_text

    if not (directory / "function.yaml").is_file():
        return None
    try:
        manifest = load_yaml(read_manifest_text(directory)[0])
    except ManifestError:
        return None
    if not isinstance(manifest, dict) or manifest.get("name") != function:
        return None
    name = manifest.get("sample") or "sample.json"
    try:
        path = directory / check_relative_path(str(name), "sample")
        request = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        fail(f"sample {name} of ./function.yaml: {getattr(exc, 'strerror', None) or exc}")
    if not _is_v2_request(request):
        fail(f"sample {path}: not a V2 infer request (an object with an 'inputs' list of tensors)")
    return request, f"sample {path}", False


def zeros_request(metadata: Any, function: str) -> dict[str, Any]:
    """A V2 request of zeros for each input the metadata lists, dynamic dimensions of size 1."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise ValueError(f"function '{function}' lists no inputs in its V2 metadata")
    tensors = []
    for spec in inputs:
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list):
            raise ValueError(f"function '{function}': an input in its metadata has no shape")
        shape = [1 if not isinstance(d, int) or d < 0 else d for d in spec["shape"]]
        count = math.prod(shape)
        if count > MAX_SAMPLE_VALUES:
            raise ValueError(f"input '{spec.get('name')}' of '{function}' has {count} values: too many for a sample")
        datatype = str(spec.get("datatype", "FP32"))
        zero: Any = "" if datatype == "BYTES" else False if datatype == "BOOL" else 0
        tensors.append({"name": spec.get("name"), "shape": shape, "datatype": datatype, "data": [zero] * count})
    return {"inputs": tensors}


def v1_request(v2: dict[str, Any]) -> dict[str, Any]:
    """The same request in V1's form: rows (`instances`) for one input, columns by name for several."""
    tensors = {t["name"]: _nested(t["data"], t.get("shape") or []) for t in v2["inputs"]}
    if len(tensors) == 1:
        return {"instances": next(iter(tensors.values()))}
    return {"inputs": tensors}


def _nested(data: Any, shape: list[int]) -> Any:
    flat = list(_flatten(data))
    if len(shape) <= 1:
        return flat

    def build(values: list[Any], dims: list[int]) -> list[Any]:
        if len(dims) == 1:
            return values
        step = len(values) // dims[0] if dims[0] else 0
        return [build(values[i * step:(i + 1) * step], dims[1:]) for i in range(dims[0])]

    return build(flat, shape)


def _flatten(data: Any) -> Any:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


# --------------------------------------------------------------------------------------------- output

def _report(response: httpx.Response, function: str, protocol: Protocol, elapsed: float, cold: bool,
            where: str, as_json: bool) -> None:
    revision = response.headers.get(REVISION_HEADER)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    summary = {"function": function, "status": response.status_code, "revision": revision,
               "seconds": round(elapsed, 6), "cold_start": cold, "protocol": protocol.value, "request": where,
               "response": body}
    if as_json:
        print_json(summary)
        if response.status_code >= 400:
            raise typer.Exit(1)
        return
    start = "cold start: no replica was running, one started for this request" if cold else "warm"
    line = f"{revision or '(no revision)'} answered HTTP {response.status_code} in {elapsed * 1000:.1f} ms ({start})"
    if response.status_code >= 400:
        console(stderr=True).print(line, markup=False)
        fail(error_message(response))
    out = console()
    out.print(line, markup=False)
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if protocol is Protocol.v2 and isinstance(outputs, list):
        out.print(outputs_table(outputs))
    else:
        out.print(json.dumps(body)[:4000], markup=False, soft_wrap=True)


def outputs_table(outputs: list[Any]) -> Any:
    from rich.table import Table

    table = Table("output", "datatype", "shape", "data", box=None)
    for tensor in outputs:
        if not isinstance(tensor, dict):
            continue
        values = list(_flatten(tensor.get("data")))
        shown = ", ".join(_value(v) for v in values[:PREVIEW_VALUES])
        if len(values) > PREVIEW_VALUES:
            shown += f", … ({len(values)} values)"
        table.add_row(str(tensor.get("name")), str(tensor.get("datatype")), str(tensor.get("shape")), shown)
    return table


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)[:40]
