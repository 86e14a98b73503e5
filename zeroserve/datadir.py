"""Where the local data dir is and what the token file is called: names only, no dependencies.

The settings model (pydantic) and the CLI's client both need these; the client reads the token without
importing the settings, so commands that only call the API start fast.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA_DIR = Path(".zeroserve")
TOKEN_FILE = "token"
