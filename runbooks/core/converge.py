"""Converge one host: plan every step from facts, print or apply the changes, re-check.

Facts for all steps are gathered in one round trip. In check mode the changes are printed
(with a unified diff for every file) and nothing is applied. Otherwise each change is applied,
then the facts of the remaining steps are read again (so no step plans from stale facts) and
the changed step must now plan no change, else it failed. Notified handlers run once each at
the end, in the order the plan declared them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runbooks.core.context import HostContext
from runbooks.core.facts import FactResult, gather
from runbooks.core.session import HostUnreachable
from runbooks.core.steps.base import Change, Plan, Step, StepFailed


@dataclass
class StepResult:
    name: str
    status: str  # ok | changed | failed
    changes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class HostResult:
    host: str
    status: str  # ok | changed | failed | unreachable
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    reboot_needed: bool = False

    @property
    def changed(self) -> int:
        return sum(1 for s in self.steps if s.status == "changed")

    @property
    def failed(self) -> int:
        return sum(1 for s in self.steps if s.status == "failed") + (
            1 if self.status in ("failed", "unreachable") and not any(
                s.status == "failed" for s in self.steps) else 0)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.steps if s.status == "ok")


def _step_facts(steps: list[tuple[int, Step]]) -> dict[str, str]:
    commands: dict[str, str] = {}
    for index, step in steps:
        for key, command in step.facts().items():
            commands[f"{index}/{key}"] = command
    return commands


def _facts_of(index: int, facts: Mapping[str, FactResult]) -> dict[str, FactResult]:
    prefix = f"{index}/"
    return {k[len(prefix):]: v for k, v in facts.items() if k.startswith(prefix)}


class Converger:
    """Runs one plan on one host and reports what it did through `emit`."""

    def __init__(self, ctx: HostContext, plan: Plan, emit: Callable[[str, str], None]) -> None:
        self.ctx = ctx
        self.plan = plan
        self.emit = emit  # emit(kind, text): kind in step|diff|error|info
        self.notified: list[str] = []

    def run(self) -> HostResult:
        started = time.monotonic()
        result = HostResult(self.ctx.host.name, "ok")
        try:
            self._converge(result)
            self._run_handlers(result)
        except HostUnreachable as exc:
            result.status, result.error = "unreachable", str(exc)
            self.emit("error", str(exc))
        result.seconds = time.monotonic() - started
        if result.status == "ok" and (result.changed or self.notified):
            result.status = "changed"
        return result

    def _converge(self, result: HostResult) -> None:
        steps = list(enumerate(self.plan.steps))
        facts = gather(self.ctx.session, _step_facts(steps))
        for position, (index, step) in enumerate(steps):
            outcome = StepResult(step.name, "ok")
            result.steps.append(outcome)
            try:
                changes = step.plan(_facts_of(index, facts))
            except StepFailed as exc:
                self._fail(result, outcome, str(exc))
                return
            if not changes:
                continue
            outcome.status = "changed"
            outcome.changes = [c.summary for c in changes]
            result.reboot_needed |= any(c.reboot for c in changes)
            self._report_changes(step, changes)
            if self.ctx.check:
                self._notify(step)
                continue
            error = self._apply(changes)
            if error is None:
                # one round trip re-reads this step (to verify it) and every later one (so
                # none plans from facts this change made stale)
                facts = gather(self.ctx.session, _step_facts(steps[position:]))
                if step.verify:
                    error = self._verify(step, _facts_of(index, facts))
            if error is not None:
                self._fail(result, outcome, error)
                return
            self._notify(step)

    def _report_changes(self, step: Step, changes: list[Change]) -> None:
        verb = "would change" if self.ctx.check else "changed"
        self.emit("step", f"{verb}: {step.name}")
        for change in changes:
            self.emit("change", change.summary)
            if change.diff:
                self.emit("diff", change.diff)

    def _apply(self, changes: list[Change]) -> str | None:
        for change in changes:
            for action in change.actions:
                done = self.ctx.session.run(action.command, action.stdin)
                if not done.ok:
                    detail = (done.stderr.strip() or done.stdout.strip())[-2000:]
                    return f"{change.summary}: exit {done.rc}: {detail or 'no output'}"
        return None

    def _verify(self, step: Step, facts: Mapping[str, FactResult]) -> str | None:
        try:
            remaining = step.plan(facts)
        except StepFailed as exc:
            return str(exc)
        if remaining:
            return ("still not converged after applying: "
                    + "; ".join(c.summary for c in remaining))
        return None

    def _notify(self, step: Step) -> None:
        for name in step.notify:
            if name not in self.notified:
                self.notified.append(name)

    def _fail(self, result: HostResult, outcome: StepResult, error: str) -> None:
        outcome.status, outcome.error = "failed", error
        result.status, result.error = "failed", f"{outcome.name}: {error}"
        self.emit("error", f"failed: {outcome.name}: {error}")

    def _run_handlers(self, result: HostResult) -> None:
        # Handlers of changes that were applied run even when a later step failed: a
        # config written but never restarted would otherwise look converged next time.
        for handler in self.plan.handlers:
            if handler.name not in self.notified:
                continue
            if self.ctx.check:
                self.emit("info", f"would run handler: {handler.name}")
                continue
            self.emit("info", f"handler: {handler.name}")
            outcome = StepResult(f"handler: {handler.name}", "changed", [handler.name])
            result.steps.append(outcome)
            try:
                if callable(handler.command):
                    handler.command(self.ctx)
                else:
                    done = self.ctx.session.run(handler.command)
                    if not done.ok:
                        raise StepFailed(f"exit {done.rc}: {done.stderr.strip()[-2000:]}")
            except StepFailed as exc:
                self._fail(result, outcome, str(exc))
                return
