"""Load tests that verify scaling: locust against a function URL, the platform's scale status alongside.

Client side only: talks to the platform over HTTP and imports nothing of it but `protocol`. Locust itself
is imported only by `locustfile.py`, in its own process (see docs/loadtest.md).
"""
