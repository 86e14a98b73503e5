"""The function-URL scheme: built, read back and bounded by one module (`protocol.function_urls`)."""

from __future__ import annotations

import pytest

from protocol.function_urls import (
    MAX_HOST_LABEL,
    FunctionUrls,
    function_urls,
    host_label,
    label_of,
    label_splits,
    path_label,
)


@pytest.mark.parametrize(("label", "splits"), [
    ("iris", []),
    ("canary-iris", [("canary", "iris")]),
    ("canary-my-model", [("canary", "my-model"), ("canary-my", "model")]),
    ("a--b", [("a", "-b"), ("a-", "b")]),
    ("-iris", []),  # no tag before the dash
    ("iris-", []),  # no function after it
    ("", []),
])
def test_label_splits_every_tag_function_pair_left_to_right(label: str, splits: list[tuple[str, str]]) -> None:
    assert label_splits(label) == splits


@pytest.mark.parametrize(("raw_path", "expected"), [
    (b"/fn/iris/v2/models/iris/infer", (b"iris", b"/v2/models/iris/infer")),
    (b"/fn/iris", (b"iris", b"/")),
    (b"/fn/iris/", (b"iris", b"/")),
    (b"/fn/canary-iris/x?y", (b"canary-iris", b"/x?y")),
    (b"/fn/%2e%2e/x", (b"%2e%2e", b"/x")),  # still encoded: the router decodes and refuses it
    (b"/fn/", (b"", b"/")),
    (b"/api/v1/functions", None),
    (b"/fnord/x", None),
])
def test_path_label_reads_the_label_and_the_path_the_function_sees(
        raw_path: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert path_label(raw_path) == expected


@pytest.mark.parametrize(("host", "label"), [
    (b"iris.localhost:8080", "iris"), (b"Canary-Iris.LOCALHOST.", "canary-iris"), (b"localhost:8080", None),
    (b"a.b.localhost", None), (b"[::1]:8080", None), (b"iris.example.com", None),
])
def test_host_label(host: bytes, label: str | None) -> None:
    assert host_label(host, "localhost") == label


@pytest.mark.parametrize(("base", "expected"), [
    ("http://127.0.0.1:8080", FunctionUrls(
        url="http://iris.localhost:8080/", path_url="http://127.0.0.1:8080/fn/iris/",
        tags={"canary": "http://canary-iris.localhost:8080/"})),
    ("https://zs.example.com/", FunctionUrls(
        url="https://iris.localhost/", path_url="https://zs.example.com/fn/iris/",
        tags={"canary": "https://canary-iris.localhost/"})),
])
def test_function_urls_are_read_back_to_the_same_function_and_tag(base: str, expected: FunctionUrls) -> None:
    urls = function_urls(base, "localhost", "iris", ["canary"])
    assert urls == expected
    host = urls.tags["canary"].split("://")[1].rstrip("/").encode()
    assert label_splits(host_label(host, "localhost") or "") == [("canary", "iris")]
    path = urls.path_url.split("://")[1].partition("/")[2].encode()
    assert path_label(b"/" + path) == (b"iris", b"/")


def test_a_tag_label_is_tag_dash_function_and_one_dns_label_at_most() -> None:
    assert label_of("iris") == "iris" and label_of("iris", "canary") == "canary-iris"
    assert MAX_HOST_LABEL == 63
