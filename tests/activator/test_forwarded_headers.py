"""What reaches a replica: the platform token of an `auth: token` function never does."""

from activator.proxy import request_headers

SCOPE = {"headers": [(b"host", b"iris.localhost"), (b"authorization", b"Bearer secret"), (b"x-a", b"1")],
         "client": ("127.0.0.1", 5000), "scheme": "http"}


def test_authorization_is_kept_for_public_functions():
    assert (b"authorization", b"Bearer secret") in request_headers(SCOPE, b"")


def test_authorization_is_dropped_for_token_functions():
    headers = request_headers(SCOPE, b"", drop_authorization=True)
    assert all(name != b"authorization" for name, _ in headers)
    assert (b"x-a", b"1") in headers and (b"x-forwarded-host", b"iris.localhost") in headers
