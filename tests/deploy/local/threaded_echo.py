"""The echo runtime, but importing it starts a thread: a zygote that preimports it is not fork-safe."""

from __future__ import annotations

import threading

from echo_app import create_app

_stop = threading.Event()
threading.Thread(target=_stop.wait, name="started-at-import", daemon=True).start()

__all__ = ["create_app"]
