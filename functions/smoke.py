"""`python -m functions.smoke DIR`: load a function and run its sample request once.

Prints exactly one JSON line on stdout and exits 0 when it worked:
  {"ok": true, "load_ms": .., "infer_ms": .., "outputs": {name: [shape, datatype]}}
or exits 1 with {"ok": false, "error": "<which file / what fault>"}. User code that prints is sent
to stderr so stdout stays one parseable line. The revision builder runs this in a child process,
so a model that crashes the interpreter cannot take the builder down with it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from functions.loaders import LoadError, load_function
from functions.samples import SampleError, sample_request
from functions.validation import check_inputs, check_produced_outputs, check_requested_outputs
from protocol.inference_errors import InferenceError
from protocol.manifest import ManifestError, load_manifest
from protocol.tensors import datatype_of
from protocol.v2_codec import decode_infer_request


def smoke_test(function_dir: str | Path) -> dict[str, Any]:
    """Load + one inference; returns the report (never raises for a bad function)."""
    function_dir = Path(function_dir)
    try:
        manifest = load_manifest(function_dir)
        started = time.perf_counter()
        function = load_function(function_dir, manifest)
        load_ms = (time.perf_counter() - started) * 1000
        request_doc = sample_request(function_dir, manifest, function.metadata)
        source = f"sample request of '{manifest.name}'"
        try:
            request = decode_infer_request(json.dumps(request_doc).encode())
            check_inputs(manifest.name, function.metadata, request.inputs)
            check_requested_outputs(manifest.name, function.metadata, request.output_names)
        except InferenceError as exc:
            return {"ok": False, "error": f"{source} does not fit the model: {exc.message}"}
        started = time.perf_counter()
        try:
            outputs = function.predict(request.inputs)
        except InferenceError as exc:
            return {"ok": False, "error": f"{function.source} failed on the {source}: {exc.message}"}
        except Exception as exc:
            return {"ok": False, "error": f"{function.source} raised {type(exc).__name__}: {exc}"}
        infer_ms = (time.perf_counter() - started) * 1000
        check_produced_outputs(manifest.name, outputs, request.output_names)
        described = {name: [list(array.shape), datatype_of(array, f"output '{name}'")]
                     for name, array in outputs.items()}
    except (ManifestError, LoadError, SampleError, InferenceError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "load_ms": round(load_ms, 3), "infer_ms": round(infer_ms, 3), "outputs": described}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(json.dumps({"ok": False, "error": "usage: python -m functions.smoke FUNCTION_DIR"}))
        return 2
    with contextlib.redirect_stdout(sys.stderr):
        report = smoke_test(args[0])
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
