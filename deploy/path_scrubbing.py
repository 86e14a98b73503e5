"""Build messages name files relative to the function, never the server's scratch paths."""

from __future__ import annotations

import re
from pathlib import Path

# Where build_from_git exports a commit; its path never reaches the pusher.
_GIT_EXPORT_DIR = re.compile(r"/\S*?zeroserve-git-build-[^/\s]+/tree(/|\b)")


def scrub_git_export(text: str) -> str:
    return _GIT_EXPORT_DIR.sub(lambda m: "" if m.group(1) == "/" else ".", text)


class PathScrubber:
    """Rewrites `source_dir` (as given and resolved) to a path relative to the function directory."""

    def __init__(self, source_dir: Path):
        root = str(Path(source_dir))
        self._prefixes = [(root + "/", ""), (root, ".")]
        resolved = str(Path(source_dir).resolve())
        if resolved != root:
            self._prefixes[:0] = [(resolved + "/", ""), (resolved, ".")]

    def __call__(self, text: str) -> str:
        for prefix, replacement in self._prefixes:
            text = text.replace(prefix, replacement)
        return text
