"""The commands README.md shows, as a reader would copy them.

Three places hold commands:

- ```sh / ```console blocks: every line that is not a comment is a command (strictly: whatever it is,
  it must be covered), and code spans in a trailing `# comment` are commands too when they look like one;
- other plain ``` blocks (a command's sample output): the lines that look like a command, such as the
  `curl ...` that `make run` prints;
- `code spans` in the prose that look like a command: `zeroserve up --help`, `git push -o ...`,
  `rollback FN` (a bare zeroserve subcommand).

"Looks like a command": it starts with a program a reader runs here (make, zeroserve, git, curl, python)
and has arguments, and for zeroserve the next word is one of its subcommands or an option; or it starts
with a zeroserve subcommand and has arguments. Each command is kept as shown and normalised
(`.venv/bin/` dropped, `zeroserve ` put before a bare subcommand, spaces collapsed), which is the key
the coverage table in test_readme_commands.py uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PROGRAMS = ("make", "zeroserve", "git", "curl", "python")
SHELL_LANGUAGES = ("sh", "bash", "shell", "console")
OUTPUT_LANGUAGES = ("", "text")
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_TRAILING_COMMENT = re.compile(r"\s+#\s")


@dataclass(frozen=True)
class Command:
    shown: str  # as written in the README, e.g. ".venv/bin/zeroserve status iris"
    text: str  # normalised: "zeroserve status iris"
    where: str  # "sh block at line 38", "prose at line 46", ...


def subcommands() -> frozenset[str]:
    """The zeroserve CLI's subcommands, asked of its click group (as `zeroserve --help` lists them)."""
    import typer

    from zeroserve.cli import app

    group = typer.main.get_command(app)
    context = group.make_context("zeroserve", [], resilient_parsing=True)
    return frozenset(group.list_commands(context))  # type: ignore[attr-defined]  # the app is a group


def normalise(shown: str, commands: frozenset[str]) -> str:
    words = shown.split()
    if words and words[0].startswith(".venv/bin/"):
        words[0] = words[0].removeprefix(".venv/bin/")
    if words and words[0] in commands:
        words.insert(0, "zeroserve")
    return " ".join(words)


def looks_like_a_command(shown: str, commands: frozenset[str]) -> bool:
    words = normalise(shown, commands).split()
    if len(words) < 2 or words[0] not in PROGRAMS:
        return False
    return words[0] != "zeroserve" or words[1] in commands or words[1].startswith("-")


def readme_commands(path: Path = README) -> list[Command]:
    """Every command shown in the README, once each (first place it appears), in reading order."""
    text = path.read_text(encoding="utf-8")
    commands = subcommands()
    found: dict[str, Command] = {}

    def add(shown: str, where: str, strict: bool) -> None:
        shown = " ".join(shown.split())
        if not shown or not (strict or looks_like_a_command(shown, commands)):
            return
        command = Command(shown=shown, text=normalise(shown, commands), where=where)
        found.setdefault(command.text, command)

    prose = text
    for fence in _FENCE.finditer(text):
        language, body = fence.group(1).lower(), fence.group(2)
        first_line = text.count("\n", 0, fence.start(2)) + 1
        prose = prose.replace(fence.group(0), "\n" * fence.group(0).count("\n"), 1)
        for offset, line in enumerate(body.splitlines()):
            where = f"{language or 'plain'} block, README.md line {first_line + offset}"
            line = line.strip()
            if language in SHELL_LANGUAGES:
                if language == "console":
                    if not line.startswith("$ "):
                        continue  # output
                    line = line[2:]
                if not line or line.startswith("#"):
                    continue
                command, _, comment = _TRAILING_COMMENT.sub(" # ", line, count=1).partition(" # ")
                add(command, where, strict=True)
                for span in _CODE_SPAN.findall(comment):
                    add(span, where, strict=False)
            elif language in OUTPUT_LANGUAGES:
                add(line, where, strict=False)
    for number, line in enumerate(prose.splitlines(), start=1):
        for span in _CODE_SPAN.findall(line):
            add(span, f"prose, README.md line {number}", strict=False)
    return list(found.values())
