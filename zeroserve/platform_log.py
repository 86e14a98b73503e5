"""The platform's own log: what `zeroserve up` prints on stderr besides its ready line.

INFO and above from zeroserve's loggers, one line each with the time and the logger: replicas ready
(with their start time), scale changes and why, where each revision's replica output goes, zygotes,
deletions, and the access log ("zeroserve.access") when the `access_log` setting is on. A program that
configured logging itself (tests, an embedding application) keeps its own configuration.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_platform_logging() -> None:
    logger = logging.getLogger("zeroserve")
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
