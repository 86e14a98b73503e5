"""The typed messages and records the local platform sends between processes: their wire form and its checks."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from pydantic import ValidationError

from deploy.local.messages import (
    FORK_REQUEST,
    STATUS_REPORT,
    TEMPLATE_MESSAGE,
    ZYGOTE_MESSAGE,
    ZYGOTE_REQUEST,
    Exited,
    Forked,
    ForkFailed,
    ForkRequest,
    ReplicaFailed,
    ReplicaReady,
    SmokeRequest,
    StartMarks,
    TemplateFailed,
    TemplateReady,
    TemplateRequest,
    ZygoteHello,
)
from deploy.local.replica_process import ReplicaProcess
from deploy.local.types import ReplicaSpec
from functions.isolation import Confinement, Identity

HELLO = ZygoteHello(pid=7, kind="torch", fork_safe=False, threads=2, reason="2 threads are running",
                    import_ms=120.5, warmup_ms=8.0, preimport_errors={"extra": "ImportError: nope"},
                    isolation_error=None)
CONFINEMENT = Confinement(env={"HOME": "/run/home/iris", "SECRET": "s3cr3t"}, identity=Identity(1000000001, 1000000001),
                          workdir="/data/fn/iris", threads=2, memory_bytes=512 << 20)
SPEC = ReplicaSpec(replica_id="iris-00001-r3", revision="iris-00001", function_dir="/data/fn/iris",
                   socket_path="/run/replicas/r3.sock", manifest={"name": "iris", "env": {"SECRET": "s3cr3t"}},
                   app_factory="functions.app:create_app", confinement=CONFINEMENT, memory="512Mi",
                   graceful_shutdown_seconds=2.0, keep_alive_seconds=65.0, view=("/data",))


@pytest.mark.parametrize("message, wire", [
    (HELLO, {"event": "hello", "pid": 7, "kind": "torch", "fork_safe": False, "threads": 2,
             "reason": "2 threads are running", "import_ms": 120.5, "warmup_ms": 8.0,
             "preimport_errors": {"extra": "ImportError: nope"}, "isolation_error": None}),
    (Forked(replica_id="r1", pid=9, has_pidfd=True),
     {"event": "forked", "replica_id": "r1", "pid": 9, "has_pidfd": True}),
    (ForkFailed(replica_id="r1", error="fork: EAGAIN"), {"event": "fork_failed", "replica_id": "r1",
                                                          "error": "fork: EAGAIN"}),
    (Exited(pid=9, returncode=-9), {"event": "exited", "pid": 9, "returncode": -9}),
], ids=["hello", "forked", "fork_failed", "exited"])
def test_zygote_messages_keep_their_wire_form_and_come_back_as_their_type(message: object, wire: dict) -> None:
    data = ZYGOTE_MESSAGE.dump_json(message)  # type: ignore[arg-type]
    assert json.loads(data) == wire
    assert ZYGOTE_MESSAGE.validate_json(data) == message


def test_status_reports_and_fork_requests_round_trip() -> None:
    ready = ReplicaReady(pid=5, timings=StartMarks(forked=1.0, loaded=1.25, listening=1.5), warnings=("no limit",))
    assert json.loads(STATUS_REPORT.dump_json(ready)) == {
        "event": "ready", "pid": 5, "timings": {"forked": 1.0, "loaded": 1.25, "listening": 1.5},
        "warnings": ["no limit"]}
    assert STATUS_REPORT.validate_json(STATUS_REPORT.dump_json(ready)) == ready
    failed = ReplicaFailed(pid=5, error="LoadError: bad model")
    assert STATUS_REPORT.validate_json(STATUS_REPORT.dump_json(failed)) == failed
    assert FORK_REQUEST.validate_json(b'{"op": "fork", "replica_id": "r1"}') == ForkRequest(replica_id="r1")
    assert ready.timings.phases_ms(requested_at=0.5, reported_at=2.0) == {
        "fork": 500.0, "load": 250.0, "listen": 250.0, "report": 500.0, "total": 1500.0}


@pytest.mark.parametrize("data, field", [
    (b'{"event": "forked", "replica_id": "r1", "pid": "nine", "has_pidfd": true}', "forked.pid"),
    (b'{"event": "exited", "pid": 9}', "exited.returncode"),
    (b'{"event": "exited", "pid": 9, "returncode": 0, "extra": 1}', "exited.extra"),
    (b'{"event": "restarted", "pid": 9}', "restarted"),
], ids=["wrong type", "missing field", "unknown field", "unknown event"])
def test_a_zygote_message_that_does_not_fit_fails_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        ZYGOTE_MESSAGE.validate_json(data)


def test_zygote_requests_and_template_messages_are_told_apart_by_their_kind() -> None:
    assert ZYGOTE_REQUEST.validate_json(b'{"op": "fork", "replica_id": "r1"}') == ForkRequest(replica_id="r1")
    assert ZYGOTE_REQUEST.validate_json(b'{"op": "template", "template_id": "t1"}') == TemplateRequest(
        template_id="t1")
    assert ZYGOTE_REQUEST.validate_json(b'{"op": "smoke", "smoke_id": "s1"}') == SmokeRequest(smoke_id="s1")
    with pytest.raises(ValidationError, match="template.template_id"):
        ZYGOTE_REQUEST.validate_json(b'{"op": "template"}')
    for message in (TemplateReady(pid=3, load_ms=4.5, private_bytes=1 << 20), TemplateFailed(error="threads"),
                    Forked(replica_id="r1", pid=4, has_pidfd=True), Exited(pid=4, returncode=0)):
        assert TEMPLATE_MESSAGE.validate_json(TEMPLATE_MESSAGE.dump_json(message)) == message
    with pytest.raises(ValidationError, match="hello"):
        TEMPLATE_MESSAGE.validate_json(b'{"event": "hello", "pid": 1}')


def test_the_replica_spec_carries_its_confinement_typed() -> None:
    data = SPEC.to_json()
    assert ReplicaSpec.from_json(data) == SPEC
    assert json.loads(data)["confinement"]["identity"] == {"uid": 1000000001, "gid": 1000000001}
    with pytest.raises(ValidationError, match="confinement.memory_bytes"):
        ReplicaSpec.from_json(data.replace(b'"memory_bytes":536870912', b'"memory_bytes":"lots"'))


def test_confinement_json_round_trips_and_refuses_what_it_does_not_know() -> None:
    as_json = CONFINEMENT.to_json()
    assert json.loads(json.dumps(as_json)) == as_json  # JSON values only
    assert Confinement.from_json(as_json) == CONFINEMENT
    assert Confinement.from_json({"env": {}}) == Confinement(env={})
    with pytest.raises(ValidationError, match="env"):
        Confinement.from_json({"identity": None})
    with pytest.raises(ValidationError, match="envv"):
        Confinement.from_json({"env": {}, "envv": {"LD_PRELOAD": "/tmp/x.so"}})


@pytest.mark.parametrize("line, expected", [
    (b'{"event": "error", "pid": 4, "error": "boom"}\n', ReplicaFailed(pid=4, error="boom")),
    (b"not json\n", ReplicaFailed(error="unreadable status line from replica: b'not json'")),
    (b'{"event": "ready", "pid": 4}\n', ReplicaFailed(error="unreadable status line from replica: "
                                                             "b'{\"event\": \"ready\", \"pid\": 4}'")),
    (b"", None),
], ids=["an error report", "not JSON", "a ready report without its timings", "nothing before EOF"])
def test_read_status_over_a_real_pipe(line: bytes, expected: ReplicaFailed | None) -> None:
    async def scenario() -> object:
        read_end, write_end = os.pipe()
        os.write(write_end, line)
        os.close(write_end)
        process = ReplicaProcess(os.getpid(), read_end, None, "fork")
        try:
            return await process.read_status()
        finally:
            process.close()

    assert asyncio.run(scenario()) == expected
