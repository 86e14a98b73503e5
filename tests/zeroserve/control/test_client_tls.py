"""The client's certificate checks: the CA bundle for an https platform, nothing to load for plain http."""

from __future__ import annotations

import socket
import ssl

import pytest

from zeroserve.client import ApiError, ControlClient, _tls_verification


def test_https_platform_is_verified_with_the_default_ca_bundle():
    assert _tls_verification("https://zeroserve.example.com") is True
    assert _tls_verification("HTTPS://zeroserve.example.com:8443") is True


def test_plain_http_platform_gets_a_context_that_trusts_nothing():
    # Cheap to create (no CA bundle read), and never a way to talk TLS unverified.
    context = _tls_verification("http://127.0.0.1:8080")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.get_ca_certs() == []


def test_client_of_a_plain_http_platform_reports_an_unreachable_one_as_apierror():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ControlClient(f"http://127.0.0.1:{port}", "token", timeout=5) as client:
        with pytest.raises(ApiError) as refused:
            client.list_functions()
    assert refused.value.status == 0
    assert f"cannot reach the platform at http://127.0.0.1:{port}" in refused.value.message
