"""The web console at /console/: static files shipped in the package; every datum comes from /api/v1."""

from zeroserve.console.app import CONSOLE_PATH, ConsoleRoute

__all__ = ["CONSOLE_PATH", "ConsoleRoute"]
