"""Fixtures for the Knative target: the Kubernetes API test server on 127.0.0.1 and a kubeconfig for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.knative.apiserver import KnativeApiServer, running_apiserver


@pytest.fixture
def apiserver() -> Iterator[KnativeApiServer]:
    with running_apiserver() as server:
        yield server


@pytest.fixture
def kubeconfig(apiserver: KnativeApiServer, tmp_path: Path) -> Path:
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")
