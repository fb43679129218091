"""Apply many changes in one round trip: the actions of several steps, then the facts that
verify them, as one script a remote shell reads from standard input.

Each action runs in its own subshell with its own standard input (a here-document, or
/dev/null), its output framed by a marker with its exit status; the first action that fails
ends the script, so later actions never run, as if each had been sent on its own. The whole
script is one `{ ... }` group: a shell runs nothing of it before it has read its closing
brace, so a connection cut while the script is on its way runs no part of it. The script
travels on stdin, never in argv, so file contents (and secrets) stay out of the host's
process list, and its size is not bounded by the kernel's argument limit.

File writes next to each other are staged (`Action.staged`): each leaves its new content,
validated, in a temporary file beside its target, and the last of them syncs all those
files at once and renames each over its target, so a fleet's converging run starts one
`sync` per batch instead of one per file. A write that fails still has the ones staged
before it put in place first.
"""

from __future__ import annotations

import re
import secrets as _random
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from runbooks.core.facts import FactResult, Runs, gather
from runbooks.core.facts import prepare as prepare_facts
from runbooks.core.steps.base import Action

# `sh -c 'exec sh -s'`: the login shell hands the channel to a shell reading the script
COMMAND = "exec sh -s"


def batchable(action: Action) -> bool:
    """Whether the batch can carry this action exactly: its `whole` form, or its stdin as a
    here-document, which always ends with a newline and cannot hold a NUL byte (others run
    on their own, as before)."""
    if action.whole is not None:  # needs no stdin in a batch
        return True
    stdin = action.stdin
    if isinstance(stdin, bytes):  # a binary file (k3s release, microk8s snap): on its own
        return False
    return stdin is None or stdin == "" or (stdin.endswith("\n") and "\0" not in stdin)


@dataclass
class Batch:
    """One script for `actions` followed by `tail` (a fact script), and its parser."""

    actions: Sequence[Action]
    tail: str = ""
    marker: str = field(default_factory=lambda: "@@greenroom-applied-" + _random.token_hex(8))

    def script(self) -> str:
        heredoc = "@@greenroom-in-" + _random.token_hex(8)
        parts = ["{"]
        staged: list[tuple[str, str]] = []  # staged writes not renamed into place yet
        for i, action in enumerate(self.actions):
            last = True
            if _stages(action):
                assert action.staged is not None
                later = self.actions[i + 1] if i + 1 < len(self.actions) else None
                # the last of the staged writes next to each other puts them all in place
                last = later is None or not _stages(later)
                done = commit([*staged, action.staged]) if last else ""
                parts.append(f"( {action.whole}\n{done}) </dev/null 2>&1")
            elif action.whole is not None:
                parts.append(f"( {action.whole}\n) </dev/null 2>&1")
            elif action.stdin is None:
                parts.append(f"( {action.command}\n) </dev/null 2>&1")
            else:
                parts.append(f"( {action.command}\n) 2>&1 <<'{heredoc}'\n"
                             f"{action.stdin}{heredoc}")
            # a failure still puts in place the writes staged before it, as if each had
            # been sent on its own (the failed one's script removed its temporary file)
            parts.append(f'r=$?; printf "\\n%s %s\\n" {shlex.quote(self.marker)} "$r"; '
                         f'[ "$r" -eq 0 ] || {{ {commit(staged, after_failure=True)}exit "$r"; }}')
            staged = [*staged, action.staged] if action.staged and not last else []
        if self.tail:
            parts.append(f"( {self.tail}\n)")
        parts.append("}")
        return "\n".join(parts) + "\n"

    def split(self, output: str) -> tuple[list[int], list[str], str]:
        """Exit status and output of each action that ran, and the output after them."""
        pattern = re.compile("\n" + re.escape(self.marker) + r" (\d+)\n")
        rcs: list[int] = []
        outputs: list[str] = []
        position = 0
        for _ in self.actions:
            match = pattern.search(output, position)
            if match is None:
                break
            rcs.append(int(match.group(1)))
            outputs.append(output[position:match.start()])
            position = match.end()
            if rcs[-1] != 0:
                break
        return rcs, outputs, output[position:]


def _stages(action: Action) -> bool:
    return action.whole is not None and action.staged is not None


def commit(staged: Sequence[tuple[str, str]], after_failure: bool = False) -> str:
    """Shell lines that put staged writes in place: one `sync` of their temporary files
    (their data on disk before a rename makes it visible), then each renamed over its
    target. `after_failure`: one line, for those still there, its errors ignored (the
    batch stops with the failure it reports)."""
    if not staged:
        return ""
    q = shlex.quote
    sync = f"sync {' '.join(q(tmp) for tmp, _ in staged)} 2>/dev/null || true"
    if after_failure:
        return f"{sync}; " + "".join(f"[ ! -e {q(tmp)} ] || mv -f {q(tmp)} {q(path)} || :; "
                                     for tmp, path in staged)
    return f"{sync}\n" + "".join(f"mv -f {q(tmp)} {q(path)}\n" for tmp, path in staged)


class _Result(Protocol):
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Applied:
    """What a batch did: exit status and output of each action that ran (they stop at the
    first failure), and the facts read after them (None when an action failed)."""

    rcs: list[int]
    outputs: list[str]
    facts: dict[str, FactResult] | None
    stderr: str = ""


def run_batch(session: Runs, actions: Sequence[Action], commands: Mapping[str, str]) -> Applied:
    """Run `actions` in order, then read `commands` (facts), in one round trip. Actions a
    batch cannot carry (see `batchable`) run one round trip each, then the facts in one
    more. A lost connection raises from the session (HostUnreachable), as for any command."""
    if not all(batchable(a) for a in actions):
        rcs: list[int] = []
        outputs: list[str] = []
        for action in actions:
            done = session.run(action.command, action.stdin)
            rcs.append(done.rc)  # type: ignore[attr-defined]
            outputs.append(getattr(done, "stderr", "").strip()
                           or getattr(done, "stdout", ""))
            if rcs[-1] != 0:
                return Applied(rcs, outputs, None)
        return Applied(rcs, outputs, gather(session, commands))
    script, parse = prepare_facts(commands)
    batch = Batch(actions, script)
    done = session.run(COMMAND, batch.script())
    rcs, outputs, rest = batch.split(getattr(done, "stdout", ""))
    ok = len(rcs) == len(actions) and all(rc == 0 for rc in rcs)
    return Applied(rcs, outputs, parse(rest) if ok else None, getattr(done, "stderr", ""))

