"""Facts: read remote state, many commands in one round trip, parsed by pure functions.

A fact is a shell command whose output and exit status describe some part of a host's
state. `gather` runs any number of them as one remote script, separating their outputs with
a marker no output can contain by chance, so a converged host costs one round trip.
Facts never change anything and run in check mode too.
"""

from __future__ import annotations

import re
import secrets as _random
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FactResult:
    """The raw result of one fact command."""

    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Runs(Protocol):
    def run(self, command: str, stdin: str | bytes | None = None) -> object: ...


def batch_script(commands: Mapping[str, str], marker: str) -> str:
    """One POSIX sh script that runs every command and frames each output with `marker`."""
    parts = ["exec 2>/dev/null </dev/null"]
    for command in commands.values():
        parts.append(f"( {command}\n)")
        parts.append(f'printf "\\n{marker} %s\\n" "$?"')
    return "\n".join(parts) + "\n"


def split_batch(output: str, keys: list[str], marker: str) -> dict[str, FactResult]:
    """Cut a batch script's output back into one FactResult per key."""
    pattern = re.compile("\n" + re.escape(marker) + r" (\d+)\n")
    results: dict[str, FactResult] = {}
    position = 0
    for key in keys:
        match = pattern.search(output, position)
        if match is None:
            raise ValueError(f"fact output ended early: no result for {key!r}")
        results[key] = FactResult(int(match.group(1)), output[position : match.start()])
        position = match.end()
    return results


def gather(session: Runs, commands: Mapping[str, str]) -> dict[str, FactResult]:
    """Run all `commands` on the host in one round trip; returns their results by key."""
    if not commands:
        return {}
    marker = "@@greenroom-" + _random.token_hex(8)
    result = session.run(batch_script(commands, marker))
    return split_batch(getattr(result, "stdout", ""), list(commands), marker)


# -- reusable fact commands and their parsers ------------------------------------------------

FILE_STAT_SEPARATOR = "@@greenroom-content"


def file_command(path: str) -> str:
    """Mode, owner, group and content of a file; exit 1 when it does not exist."""
    p = shlex.quote(path)
    return (
        f"[ -f {p} ] || exit 1; stat -c '%a %U %G' {p} && "
        f"echo {FILE_STAT_SEPARATOR} && cat {p}"
    )


@dataclass(frozen=True)
class FileState:
    """What `file_command` found: None content means the file does not exist."""

    content: str | None
    mode: str | None = None
    owner: str | None = None
    group: str | None = None


def parse_file(result: FactResult) -> FileState:
    if not result.ok:
        return FileState(None)
    head, _, content = result.out.partition(f"\n{FILE_STAT_SEPARATOR}\n")
    fields = head.split()
    if len(fields) != 3:
        return FileState(None)
    return FileState(content, fields[0], fields[1], fields[2])
