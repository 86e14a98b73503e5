"""gRPC (Open Inference Protocol) through a real `zeroserve up`: tritonclient.grpc, sync and aio, against the
activator's gRPC port; raw calls with the repository's messages where the response metadata is the point."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
import yaml
from tritonclient.utils import InferenceServerException

from protocol.grpc import grpc_predict_v2_pb2 as pb
from protocol.grpc.service import METHODS, method_path
from protocol.grpc.tensors import decode_infer_response, encode_infer_request
from tests.polling import wait_for
from tests.zeroserve.platform.conftest import FAST_SCALING, REPO, Platform, sleepy_function, stop_leaving_nothing

GRPC_LINE = re.compile(r"^zeroserve gRPC .* at (127\.0\.0\.1:\d+)$", re.M)
MULTI_IO = REPO / "tests" / "functions" / "fixture_functions" / "multi-io"
QUEUE_LIMIT = 2


def copy_function(source: Path, dest: Path, **manifest: object) -> Path:
    shutil.copytree(source, dest)
    data = yaml.safe_load((dest / "function.yaml").read_text())
    data.update(name=dest.name, **manifest)
    (dest / "function.yaml").write_text(yaml.safe_dump(data))
    return dest


class GrpcPlatform:
    def __init__(self, platform: Platform, address: str):
        self.platform = platform
        self.address = address

    def call(self, method: str, request: object, metadata: tuple[tuple[str, str], ...] = ()
             ) -> tuple[object, dict[str, str]]:
        """One call; returns the response and the response's (trailing) metadata."""
        request_class, response_class = METHODS[method]
        with grpc.insecure_channel(self.address) as channel:
            stub = channel.unary_unary(method_path(method), request_serializer=request_class.SerializeToString,
                                       response_deserializer=response_class.FromString)
            response, call = stub.with_call(request, timeout=60, metadata=metadata)
        return response, dict(call.trailing_metadata())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcPlatform]:
    root = tmp_path_factory.mktemp("grpc")
    platform = Platform(root / "data", {"ZEROSERVE_QUEUE_LIMIT": str(QUEUE_LIMIT)})
    try:
        platform.start()
        address = GRPC_LINE.search("".join(platform.output))
        assert address is not None, "".join(platform.output)  # printed before the ready line
        for directory in (
            REPO / "examples" / "iris",
            copy_function(MULTI_IO, root / "words", scaling=dict(FAST_SCALING)),
            copy_function(MULTI_IO, root / "private", auth="token", scaling=dict(FAST_SCALING)),
            sleepy_function(root, "queued", concurrency=1, scaling={**FAST_SCALING, "max_scale": 1}),
            sleepy_function(root, "slow", timeout_seconds=1, scaling=dict(FAST_SCALING)),
        ):
            platform.deploy(directory)
        yield GrpcPlatform(platform, address.group(1))
    finally:
        stop_leaving_nothing([platform])


def words_request(words: list[bytes], model: str = "words") -> pb.ModelInferRequest:
    values = np.arange(len(words) * 3, dtype=np.float32).reshape(len(words), 3)
    return encode_infer_request(model, {"values": values, "words": np.array(words, dtype=object)})


def test_a_call_at_zero_waits_for_a_cold_start_and_names_the_revision(served: GrpcPlatform) -> None:
    assert served.platform.revision_status("words")["ready"] == 0  # initial_scale 0: nothing runs yet
    response, metadata = served.call("ModelInfer", words_request([b"cold", b"start"]))
    assert isinstance(response, pb.ModelInferResponse)
    assert (response.model_name, response.model_version) == ("words", "words-00001")
    assert decode_infer_response(response)["upper"].tolist() == [b"COLD", b"START"]
    assert metadata["zeroserve-revision"] == "words-00001" and metadata["zeroserve-cold-start"] == "true"
    assert re.fullmatch(r"[0-9a-f]{16}", metadata["zeroserve-request-id"])
    _, warm = served.call("ModelInfer", words_request([b"warm"]))
    assert "zeroserve-cold-start" not in warm and warm["zeroserve-revision"] == "words-00001"


def test_tritonclient_sync_health_metadata_and_bytes(served: GrpcPlatform) -> None:
    with closing(triton.InferenceServerClient(served.address)) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata().name == "zeroserve"
        assert client.is_model_ready("words")
        metadata = client.get_model_metadata("words", as_json=True)
        assert metadata["name"] == "words" and metadata["versions"] == ["words-00001"]
        assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("values", "FP32"), ("words", "BYTES")]
        values = triton.InferInput("values", [2, 3], "FP32")
        values.set_data_from_numpy(np.ones((2, 3), np.float32))
        text = triton.InferInput("words", [2], "BYTES")
        text.set_data_from_numpy(np.array([b"gr", "p\u00e7".encode()], dtype=object))
        result = client.infer("words", [values, text], request_id="sync-1")
    assert result.get_response().id == "sync-1"
    assert result.as_numpy("upper").tolist() == [b"GR", "p\u00e7".encode().upper()]  # bytes.upper: ASCII only
    assert result.as_numpy("doubled").tolist() == [[2.0] * 3] * 2 and result.as_numpy("length").tolist() == [2, 3]


def test_tritonclient_aio_concurrent_calls(served: GrpcPlatform) -> None:
    async def run() -> list[list[bytes]]:
        client = triton_aio.InferenceServerClient(served.address)
        try:
            async def one(n: int) -> list[bytes]:
                values = triton_aio.InferInput("values", [1, 3], "FP32")
                values.set_data_from_numpy(np.full((1, 3), n, np.float32))
                text = triton_aio.InferInput("words", [1], "BYTES")
                text.set_data_from_numpy(np.array([b"w%d" % n], dtype=object))
                return (await client.infer("words", [values, text])).as_numpy("upper").tolist()
            return await asyncio.gather(*(one(n) for n in range(16)))
        finally:
            await client.close()

    assert asyncio.run(run()) == [[b"W%d" % n] for n in range(16)]


def test_a_90_10_split_is_observed_and_tags_route_by_model_name(served: GrpcPlatform, tmp_path: Path) -> None:
    second = copy_function(MULTI_IO, tmp_path / "words", scaling=dict(FAST_SCALING), env={"CHANGED": "1"})
    served.platform.deploy(second)
    with served.platform.client() as client:
        client.set_traffic("words", [{"revision": "words-00001", "percent": 90},
                                     {"revision": "words-00002", "percent": 10, "tag": "canary"}])
    with closing(triton.InferenceServerClient(served.address)) as client:
        values = triton.InferInput("values", [1, 3], "FP32")
        values.set_data_from_numpy(np.ones((1, 3), np.float32))
        text = triton.InferInput("words", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"split"], dtype=object))
        served_by = Counter(client.infer("words", [values, text]).get_response().model_version for _ in range(300))
        canary = client.infer("canary-words", [values, text]).get_response()
    assert sum(served_by.values()) == 300 and set(served_by) <= {"words-00001", "words-00002"}
    # Binomial(300, 0.1): mean 30, sd 5.2; +-4.5 sd keeps a false failure below 1e-5.
    assert 7 <= served_by["words-00002"] <= 53, served_by
    assert (canary.model_name, canary.model_version) == ("words", "words-00002")


@pytest.mark.parametrize(("model", "code", "message"), [
    ("nothere", grpc.StatusCode.NOT_FOUND, "model 'nothere': function 'nothere' not found"),
    ("beta-words", grpc.StatusCode.NOT_FOUND, "model 'beta-words': tag 'beta' not found for function 'words'"),
    ("Words", grpc.StatusCode.INVALID_ARGUMENT, "model 'Words': function 'Words' must be a DNS-1035 label"),
])
def test_unknown_models_name_the_fault(served: GrpcPlatform, model: str, code: grpc.StatusCode,
                                       message: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        served.call("ModelInfer", words_request([b"x"], model=model))
    assert caught.value.code() == code and caught.value.details().startswith(message)
    with closing(triton.InferenceServerClient(served.address)) as client, \
            pytest.raises(InferenceServerException) as metadata:
        client.get_model_metadata(model)
    assert metadata.value.status() == str(code)


def test_bad_tensors_are_invalid_argument_before_anything_wakes(served: GrpcPlatform) -> None:
    request = words_request([b"a", b"b"])
    request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    with pytest.raises(grpc.RpcError) as caught:
        served.call("ModelInfer", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == ("input 'values': shape [2, 3] of FP32 needs 24 bytes but its "
                                      "raw_input_contents holds 20")
    request = words_request([b"a"])
    request.inputs[1].datatype = "FP32"  # the model's own check: the replica's 400, as INVALID_ARGUMENT
    request.raw_input_contents[1] = b"\x00" * 4
    with pytest.raises(grpc.RpcError) as model_check:
        served.call("ModelInfer", request)
    assert model_check.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert model_check.value.details() == "input 'words' has datatype FP32 but model 'words' expects BYTES"
    assert dict(model_check.value.trailing_metadata())["zeroserve-revision"].startswith("words-0000")


def test_auth_token_functions_take_the_token_as_metadata(served: GrpcPlatform) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        served.call("ModelInfer", words_request([b"x"], model="private"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED and "auth: token" in caught.value.details()
    assert served.platform.revision_status("private")["ready"] == 0  # refused calls wake nothing
    response, _ = served.call("ModelInfer", words_request([b"ok"], model="private"),
                              metadata=(("authorization", f"Bearer {served.platform.token}"),))
    assert isinstance(response, pb.ModelInferResponse) and response.model_name == "private"


def test_queue_full_is_resource_exhausted(served: GrpcPlatform) -> None:
    async def run() -> list[grpc.StatusCode]:
        request_class, response_class = METHODS["ModelInfer"]
        async with grpc.aio.insecure_channel(served.address) as channel:
            stub = channel.unary_unary(method_path("ModelInfer"), request_serializer=request_class.SerializeToString,
                                       response_deserializer=response_class.FromString)
            request = encode_infer_request("queued", {"ms": np.array([800], np.float32)})
            details: list[str] = []

            async def one() -> grpc.StatusCode:
                try:
                    await stub(request, timeout=60)
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    details.append(error.details() or "")
                    return error.code()
            codes = await asyncio.gather(*(one() for _ in range(6)))
            assert any(f"revision 'queued-00001' has {QUEUE_LIMIT} requests waiting already" in d for d in details)
            return codes

    codes = Counter(asyncio.run(run()))
    # concurrency 1, max_scale 1: one in flight and QUEUE_LIMIT waiting at most; the rest are refused at once.
    assert codes[grpc.StatusCode.OK] >= 1 and codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 3, codes


def test_revision_timeout_is_deadline_exceeded(served: GrpcPlatform) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        served.call("ModelInfer", encode_infer_request("slow", {"ms": np.array([3000], np.float32)}))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "revision 'slow-00001'" in caught.value.details() and "(timeout 1s)" in caught.value.details()


def test_the_readme_example_runs_as_shown(served: GrpcPlatform) -> None:
    section = (REPO / "README.md").read_text().split("\n## gRPC\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None and '"127.0.0.1:8081"' in code.group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.group(1).replace('"127.0.0.1:8081"', repr(served.address)), {})  # noqa: S102 - the README's code
    probabilities, revision = printed.getvalue().rsplit(" ", 1)
    assert revision.strip() == "iris-00001", printed.getvalue()
    assert float(probabilities.strip("[] ").split()[0]) > 0.99, printed.getvalue()  # setosa, as the README says


def test_no_grpc_port_with_minus_one(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", {"ZEROSERVE_GRPC_PORT": "-1"})
    try:
        platform.start()
        wait_for(lambda: platform.url, "the platform's URL")
        assert GRPC_LINE.search("".join(platform.output)) is None
    finally:
        stop_leaving_nothing([platform])


def test_a_grpc_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        chosen = subprocess.run([sys.executable, "-m", "zeroserve.cli", "up", "--port", "0", "--grpc-port", port,
                                 "--data", str(tmp_path / "chosen")], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        assert chosen.returncode == 1
        assert f"error: cannot listen for gRPC on 127.0.0.1:{port} (--grpc-port)" in chosen.stderr
