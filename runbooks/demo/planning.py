"""demo.check's plans, built before their planning reads come back: one round trip per host.

A runbook's plan may read the host before it can choose its steps (`ctx.gather`: pi-prep's
board facts, dell-gateway's VLAN link and firewall, registry.trust's container runtimes).
Run alone, that is its own round trip, then the steps' facts are another. demo.check folds
both into the host's one batch:

1. Each part is planned AHEAD from the answers its planning reads had at the site's last
   check (`Hints`, kept per site in the user's state directory): the plan's `ctx.gather`
   is answered from them, and every command it asks is recorded. A plan that asks a
   command with no hint stops there (`Unknown`; a first check, a new host). A plain
   cluster read a plan makes through its session (`reads.shareable`: the speaker double's
   and the audience path's `kubectl get` on the first server) is answered from its hint
   too (`Ahead`), and read for real at the same time, beside the batch.
2. The host's batch reads every recorded planning command, AND the step facts of every
   plan built ahead, with the probes' facts.
3. A plan whose planning reads answered exactly as its hints did is the plan of those
   answers (a plan is a function of what it reads): it is kept, and its step facts are in
   the batch already. Any other part is planned again from the real answers
   (`Planner(..., live=True)`: a command still missing is read then), and its step facts
   that the batch lacks are read in one more round trip for the host.

Nothing is decided from a hint: every verdict comes from facts read in this check. A wrong
or missing hint costs a round trip, never a wrong answer. The hints are data (what the
host answered), never commands: every command run is built by the runbooks' own code. A
Kubernetes Secret is kept by its name only (`redact`): a plan that read one is always planned
again from the real answer.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.core import secrets
from runbooks.core.context import HostContext
from runbooks.core.facts import FactResult, gather
from runbooks.core.session import CommandResult
from runbooks.demo.reads import SharedReads, shareable

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


def redact(command: str, result: FactResult) -> FactResult:
    """What a hint keeps of an answer: a cluster read's Secrets without their values (a
    hint that differs from every real answer, so the plan is always built again)."""
    if "secret" not in command or not shareable(command):
        return result
    try:
        data = json.loads(result.out)
    except ValueError:
        return FactResult(result.rc, "")
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return FactResult(result.rc, "")
    for n, item in enumerate(items):
        if isinstance(item, dict) and item.get("kind") == "Secret":
            # its name only: values, and the annotations kubectl apply leaves (a copy of them)
            found = item.get("metadata")
            meta: dict[str, Any] = found if isinstance(found, dict) else {}
            items[n] = {"kind": "Secret", "metadata": {
                k: meta[k] for k in ("name", "namespace") if k in meta}}
    return FactResult(result.rc, json.dumps(data))


class Hints:
    """Each host's last answers to its plans' planning reads, per site: a JSON file in the
    user's state directory (mode 0600; data, never commands), written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._hosts: dict[str, dict[str, FactResult]] = {}
        self._fresh: dict[str, dict[str, FactResult]] = {}  # this check's, by host
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

    def get(self, host: str, command: str) -> FactResult | None:
        with self._lock:
            return self._hosts.get(host, {}).get(command)

    def remember(self, host: str, answers: Mapping[str, FactResult]) -> None:
        """Planning reads on `host` as answered in this check: together they replace the
        host's hints when the check is saved."""
        with self._lock:
            mine = self._fresh.setdefault(host, {})
            for command, result in answers.items():
                mine[command] = redact(command, FactResult(result.rc, result.out))

    def save(self) -> None:
        """Written only when an answer changed; a state directory we cannot write is no
        error (the next check plans after its batch instead)."""
        with self._lock:
            fresh = {h: a for h, a in self._fresh.items() if self._hosts.get(h) != a}
            self._fresh = {}
            if not fresh:
                return
            self._hosts.update(fresh)
            data = {"version": HINTS_VERSION,  # a secret in an answer is masked: no hint
                    "hosts": {host: {c: [r.rc, secrets.mask(r.out)]
                                     for c, r in answers.items()}
                              for host, answers in sorted(self._hosts.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(tmp, self.path)
        except OSError:
            return


class Ahead:
    """A part's connector while it is planned ahead: a plain cluster read (`shareable`) on
    any host is answered from that host's hint and read for real meanwhile
    (`SharedReads.start`; compared after the batch); without a hint it is read as usual.
    Every such read is recorded in `asked` (host, command). Once `closed`, it is the
    shared connector as it is (a step that kept its session reads for real)."""

    def __init__(self, reads: SharedReads, hints: Hints, inventory: Any) -> None:
        self.reads, self.hints, self.inventory = reads, hints, inventory
        self.open = True
        self.hinted: dict[tuple[str, str], FactResult] = {}
        self.asked: set[tuple[str, str]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reads, name)

    def session(self, host: Any) -> _AheadSession:
        """`host`'s session for a plan built ahead: opened when a command needs it (a
        hinted read does not)."""
        from runbooks.demo.early import Later

        return _AheadSession(self, host, Later(lambda: self.reads.session(host)))

    def differs(self) -> bool:
        """A hinted cluster read answered otherwise for real, or could not be read (waits
        for the reads; planned again, the part meets the same failure in its own plan)."""
        try:
            return any(self.reads.fact(self.inventory.hosts[name], command) != hint
                       for (name, command), hint in self.hinted.items())
        except Exception:  # noqa: BLE001 - see above
            return True

    def answers(self) -> dict[str, dict[str, FactResult]]:
        """Every cluster read asked while planned ahead, as answered for real, by host."""
        out: dict[str, dict[str, FactResult]] = {}
        for name, command in self.asked:
            try:
                found = self.reads.fact(self.inventory.hosts[name], command)
            except Exception:  # noqa: BLE001 - no hint for it then
                continue
            out.setdefault(name, {})[command] = found
        return out


class _AheadSession:
    def __init__(self, ahead: Ahead, host: Any, session: Any) -> None:
        self._ahead, self._host, self._session = ahead, host, session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, command: str, stdin: str | bytes | None = None) -> Any:
        ahead = self._ahead
        if ahead.open and stdin is None and shareable(command):
            key = (self._host.name, command)
            ahead.asked.add(key)
            hint = ahead.hints.get(self._host.name, command)
            if hint is not None:
                ahead.hinted[key] = hint
                ahead.reads.start(self._host, command)
                return CommandResult(hint.rc, hint.out, "")
        return self._session.run(command, stdin)


class Turns:
    """Every host's plans built ahead by a few threads shared by the whole check, the hosts
    in `order` (the ones with the most parts first: theirs are the longest batches, so they
    start first), each host's parts queued together once its turn comes.

    On one CPU for Python (the GIL), planning every part of every host at once finishes
    them all at the end; in turns, the first hosts' batches start after their own plans.
    A host never queued (it failed before) holds no one up longer than WAIT seconds."""

    WAIT = 1.0

    def __init__(self, order: list[str], workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._order = list(order)
        self._turn = 0
        self._ready = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="plan")

    def queue(self, host: str, plan: Any, parts: list[Any]) -> Planned:
        """`plan(part)` for each of `parts` once `host`'s turn has come; a `Planned` that
        waits for them all and returns the seconds they took from being queued."""
        import time

        with self._ready:
            self._ready.wait_for(lambda: self._up_next() in (host, None), self.WAIT)
            started = time.monotonic()
            futures = [self._pool.submit(plan, part) for part in parts]
            if self._up_next() == host:
                self._turn += 1
            self._ready.notify_all()

        return Planned(futures, started)

    def _up_next(self) -> str | None:
        return self._order[self._turn] if self._turn < len(self._order) else None

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class Planned:
    """A host's parts being planned: called, waits for them all and returns the seconds
    since `started`; `done(wait)` tells, waiting up to `wait` seconds, whether they all are
    (demo.check then reads the probes' facts in the plans' batch, else ahead of it)."""

    def __init__(self, futures: list[Any], started: float) -> None:
        self._futures, self._started = futures, started

    def done(self, wait: float = 0.0) -> bool:
        """All planned, waiting up to `wait` seconds for the last ones."""
        from concurrent.futures import wait as waiting

        return not waiting(self._futures, timeout=max(0.0, wait)).not_done

    def __call__(self) -> float:
        import time

        for future in self._futures:
            future.result()
        return time.monotonic() - self._started
