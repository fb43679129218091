"""The step model: a step compares wanted with current state and yields only the changes needed.

A `Step` names the result it ensures ("Ensure net.ipv4.ip_forward = 1"), declares the facts
it needs as shell commands, and turns their results into `Change`s: none when the host is
already converged. A change carries the remote actions that apply it and, for files, the
unified diff that `--check` prints. Steps that changed something notify `Handler`s, which
run once each at the end of a host's run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runbooks.core.facts import FactResult

if TYPE_CHECKING:
    from runbooks.core.context import HostContext


@dataclass(frozen=True)
class Action:
    """One remote shell command (with optional stdin) that applies part of a change.

    `whole`: the same change as a command that needs no stdin, for a batch (runbooks.core.apply),
    whose script, here-documents included, the shell parses whole before running any of it:
    a file write then carries its content in the script and skips what only a stream that
    may end early needs (a `cat` of stdin and its SHA-256 check), two processes per file.
    `staged`: (temporary file, target) when `whole` leaves the new content, validated, in
    the temporary file: the batch syncs it and renames it over the target, with one `sync`
    for all the staged writes next to each other (`steps.files.staged_write`)."""

    command: str
    stdin: str | None = None
    whole: str | None = None
    staged: tuple[str, str] | None = None


@dataclass(frozen=True)
class Change:
    """One difference between wanted and current state, and how to remove it."""

    summary: str
    actions: tuple[Action, ...] = ()
    diff: str = ""
    reboot: bool = False  # True: takes effect only after the host reboots

    @property
    def precondition(self) -> bool:
        """No command and no reboot: something that must be done first, elsewhere (the
        summary says what). Check mode reports it; a real run fails the step with it."""
        return not self.actions and not self.reboot


class StepFailed(Exception):
    """A step could not be planned or applied; the message says why and what to do."""


class Step:
    """Base class: subclasses set `name` and implement `facts` and `plan`."""

    name: str = "step"
    notify: tuple[str, ...] = ()
    verify: bool = True  # re-check after applying; still not converged is an error

    def facts(self) -> Mapping[str, str]:
        """Fact commands this step needs, by local key."""
        return {}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        """The changes needed, given fact results: an empty list when converged."""
        raise NotImplementedError

    def scope(self) -> frozenset[str] | None:
        """Everything this step's facts read and its changes touch, as resource names
        (`file:/etc/fstab`, `sysctl:net.ipv4.ip_forward`), or None when it cannot say.

        The converger applies the changes of consecutive steps with disjoint scopes in one
        round trip (each planned from facts no earlier change of the batch can alter); a step
        without a scope is planned only from facts read after every earlier change."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def scopes_overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two scopes share a resource; a file also overlaps its directories (writing
    /etc/a/b creates /etc/a)."""
    for x in a:
        for y in b:
            if x == y:
                return True
            if x.startswith("file:") and y.startswith("file:"):
                short, long = sorted((x, y), key=len)
                if long.startswith(short.rstrip("/") + "/"):
                    return True
    return False


class Verify(Step):
    """A step that checks what earlier steps bring about and changes nothing: `plan` returns
    no change, or raises StepFailed naming what is wrong. In check mode, after an earlier
    step that would change something, its failure is expected and reported as such."""

    verify = False


class Health(Step):
    """A read-only report: `evaluate` turns the facts into (ok, text) checks, each logged as
    ok/BAD; StepFailed names every failed one. Never changes anything (the `*.check` tasks)."""

    verify = False

    def __init__(self, ctx: HostContext, name: str, commands: Mapping[str, str]) -> None:
        self.ctx, self.name, self.commands = ctx, name, dict(commands)

    def facts(self) -> Mapping[str, str]:
        return self.commands

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        raise NotImplementedError

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        results = self.evaluate(facts)
        for ok, text in results:
            self.ctx.log(f"{'ok  ' if ok else 'BAD '} {text}")
        bad = [text for ok, text in results if not ok]
        if bad:
            raise StepFailed("; ".join(bad))
        return []


class Composite(Step):
    """A step made of steps: one name and one result, the parts' facts read in the same
    batch (each under its own prefix), their changes in order."""

    def __init__(self, name: str, parts: Sequence[Step], notify: Sequence[str] = ()) -> None:
        self.name = name
        self.parts = list(parts)
        self.notify = tuple(notify) or tuple(n for p in self.parts for n in p.notify)

    def facts(self) -> Mapping[str, str]:
        return {f"{i}.{key}": command for i, part in enumerate(self.parts)
                for key, command in part.facts().items()}

    def scope(self) -> frozenset[str] | None:
        scopes = [part.scope() for part in self.parts]
        if any(s is None for s in scopes):
            return None
        return frozenset().union(*scopes)  # type: ignore[arg-type]

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes: list[Change] = []
        for i, part in enumerate(self.parts):
            prefix = f"{i}."
            changes += part.plan({k[len(prefix):]: v for k, v in facts.items()
                                  if k.startswith(prefix)})
        return changes


@dataclass
class Handler:
    """Runs once at the end of a host's run when a step notified it.

    `command` is a shell command, or a callable taking the HostContext (for handlers that
    must do more than one command, such as rebooting and waiting for the host).
    """

    name: str
    command: str | Callable[[HostContext], None]

    @classmethod
    def restart(cls, service: str) -> Handler:
        return cls(f"restart {service}", f"systemctl restart {service}")


@dataclass
class Plan:
    """What a runbook wants on one host: steps in order, and the handlers they may notify."""

    steps: list[Step] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)

    def add(self, *steps: Step) -> Plan:
        self.steps.extend(steps)
        return self

    def handler(self, *handlers: Handler) -> Plan:
        for handler in handlers:
            if all(h.name != handler.name for h in self.handlers):
                self.handlers.append(handler)
        return self

    def check_notifications(self) -> None:
        """Every handler a step notifies must exist: a typo is a bug, caught before running."""
        names = {h.name for h in self.handlers}
        for step in self.steps:
            for wanted in step.notify:
                if wanted not in names:
                    raise StepFailed(
                        f"step {step.name!r} notifies unknown handler {wanted!r}; "
                        f"known: {', '.join(sorted(names)) or 'none'}"
                    )


class Command(Step):
    """Run a command unless (or only if) a guard fact says it is needed.

    `unless`: a shell test; the command runs when it exits non-zero.
    `only_if`: a shell test; the command runs when it exits zero.
    """

    def __init__(
        self,
        name: str,
        command: str,
        *,
        unless: str | None = None,
        only_if: str | None = None,
        notify: Sequence[str] = (),
        stdin: str | None = None,
        reboot: bool = False,
        verify: bool = True,
    ) -> None:
        if (unless is None) == (only_if is None):
            raise ValueError("Command needs exactly one guard: unless= or only_if=")
        self.name = name
        self.command = command
        self.unless = unless
        self.only_if = only_if
        self.notify = tuple(notify)
        self.stdin = stdin
        self.reboot = reboot
        self.verify = verify

    def facts(self) -> Mapping[str, str]:
        return {"guard": self.unless or self.only_if or "true"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        guard_ok = facts["guard"].ok
        needed = not guard_ok if self.unless is not None else guard_ok
        if not needed:
            return []
        return [Change(f"run: {self.command}", (Action(self.command, self.stdin),),
                       reboot=self.reboot)]
