"""demo.check's plans, built before their planning reads come back: one round trip per host.

A runbook's plan may read the host before it can choose its steps (`ctx.gather`: pi-prep's
board facts, dell-gateway's VLAN link and firewall, registry.trust's container runtimes).
Run alone, that is its own round trip, then the steps' facts are another. demo.check folds
both into the host's one batch:

1. Each part is planned AHEAD from the answers its planning reads had at the site's last
   check (`Hints`, kept per site in the user's state directory): the plan's `ctx.gather`
   is answered from them, and every command it asks is recorded. A plan that asks a
   command with no hint stops there (`Unknown`; a first check, a new host).
2. The host's batch reads every recorded planning command, AND the step facts of every
   plan built ahead, with the probes' facts.
3. A plan whose planning reads answered exactly as its hints did is the plan of those
   answers (a plan is a function of what it reads): it is kept, and its step facts are in
   the batch already. Any other part is planned again from the batch's real answers
   (`Planner(..., live=True)`: a command still missing is read then), and its step facts
   that the batch lacks are read in one more round trip for the host.

Nothing is decided from a hint: every verdict comes from facts read in this check. A wrong
or missing hint costs a round trip, never a wrong answer. The hints are data (what the
host answered), never commands: every command run is built by the runbooks' own code.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runbooks.core import secrets
from runbooks.core.context import HostContext
from runbooks.core.facts import FactResult, gather

HINTS_VERSION = 1


class Unknown(Exception):
    """A plan built ahead asked a planning read with no hint: it is planned after the batch."""


@dataclass
class Planner(HostContext):
    """A HostContext whose planning reads (`gather`) are answered from `known` (by command)
    and recorded in `asked`. Ahead (`live` False) a command not in `known` raises Unknown,
    after recording it; live, it is read from the host (one round trip for all of them)."""

    known: Mapping[str, FactResult] = field(default_factory=dict)
    live: bool = False
    asked: dict[str, FactResult | None] = field(default_factory=dict)

    def gather(self, commands: Mapping[str, str]) -> dict[str, FactResult]:
        missing = {k: c for k, c in commands.items() if c not in self.known}
        for command in commands.values():
            self.asked.setdefault(command, self.known.get(command))
        if missing and not self.live:
            raise Unknown(", ".join(sorted(missing)))
        found = gather(self.session, missing) if missing else {}
        for key, command in missing.items():
            self.asked[command] = found[key]
        return {k: found[k] if k in missing else self.known[c] for k, c in commands.items()}


def same_answers(asked: Mapping[str, FactResult | None],
                 answers: Mapping[str, FactResult]) -> bool:
    """Every planning read answered now (`answers`, by command) as its hint did."""
    for command, hinted in asked.items():
        now = answers.get(command)
        if hinted is None or now is None or (hinted.rc, hinted.out) != (now.rc, now.out):
            return False
    return True


class Hints:
    """Each host's last answers to its plans' planning reads, per site: a JSON file in the
    user's state directory (mode 0600; data, never commands), written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._hosts: dict[str, dict[str, FactResult]] = {}
        self._changed = False
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != HINTS_VERSION:
            return
        for host, answers in (data.get("hosts") or {}).items():
            if isinstance(answers, dict):
                self._hosts[str(host)] = {
                    str(command): FactResult(int(value[0]), str(value[1]))
                    for command, value in answers.items()
                    if isinstance(value, list) and len(value) == 2}

    @classmethod
    def of_site(cls, site: str) -> Hints:
        from runbooks.demo.history import state_dir

        return cls(state_dir() / f"{site}.plan-reads.json")

    def of(self, host: str) -> dict[str, FactResult]:
        with self._lock:
            return dict(self._hosts.get(host, {}))

    def remember(self, host: str, answers: Mapping[str, FactResult]) -> None:
        """The host's planning reads as answered in this check (replacing the last ones)."""
        fresh = {command: FactResult(r.rc, r.out) for command, r in answers.items()}
        with self._lock:
            if self._hosts.get(host) != fresh:
                self._hosts[host] = fresh
                self._changed = True

    def save(self) -> None:
        """Written only when an answer changed; a state directory we cannot write is no
        error (the next check plans after its batch instead)."""
        with self._lock:
            if not self._changed:
                return
            data = {"version": HINTS_VERSION,  # a secret in an answer is masked: no hint
                    "hosts": {host: {c: [r.rc, secrets.mask(r.out)]
                                     for c, r in answers.items()}
                              for host, answers in sorted(self._hosts.items())}}
            self._changed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(tmp, self.path)
        except OSError:
            return
