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

from runbooks.core import pending
from runbooks.core.context import HostContext
from runbooks.core.facts import FactResult, gather
from runbooks.core.results import HostResult, Status, StepResult
from runbooks.core.session import HostUnreachable
from runbooks.core.steps.base import Change, Plan, Step, StepFailed, Verify


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
    """Runs one plan on one host and reports what it did through `emit`.

    Check mode lives here and nowhere else: steps plan the same way in both modes, and the
    converger decides what to do with their changes. Two kinds of change need no command:
    - a reboot (`Change.reboot`): it notifies the reboot handler;
    - a precondition (no actions, no reboot: something another runbook or the user must do
      first): in check mode it is reported like any change, otherwise the step fails with it.
    A `Verify` step checks what earlier steps bring about: in check mode, when an earlier
    step would change something, its failure is reported as what would be verified.
    """

    def __init__(self, ctx: HostContext, plan: Plan, emit: Callable[[str, str], None]) -> None:
        self.ctx = ctx
        self.plan = plan
        self.emit = emit  # emit(kind, text): kind in step|diff|error|info
        self.notified: list[str] = []
        self.marked: set[str] = set()  # handlers with a marker on the host (core.pending)

    def run(self) -> HostResult:
        started = time.monotonic()
        result = HostResult(self.ctx.host.name)
        try:
            self._converge(result)
            self._run_handlers(result)
        except HostUnreachable as exc:
            result.status, result.error = Status.UNREACHABLE, str(exc)
            self.emit("error", str(exc))
        result.seconds = time.monotonic() - started
        if result.status is Status.OK and (result.changed or self.notified):
            result.status = Status.CHANGED
        return result

    def _converge(self, result: HostResult) -> None:
        steps = list(enumerate(self.plan.steps))
        commands = _step_facts(steps)
        if self.plan.handlers:
            commands[pending.FACT_KEY] = pending.LIST_COMMAND
        facts = gather(self.ctx.session, commands)
        if self.plan.handlers:
            self._owed(facts[pending.FACT_KEY].out)
        for position, (index, step) in enumerate(steps):
            outcome = StepResult(step.name)
            result.steps.append(outcome)
            try:
                changes = step.plan(_facts_of(index, facts))
            except StepFailed as exc:
                if self.ctx.check and isinstance(step, Verify) and result.changed:
                    self.emit("step", f"would verify after the changes above: {step.name} "
                                      f"(now: {exc})")
                    continue
                self._fail(result, outcome, str(exc))
                return
            if not changes:
                continue
            outcome.status = Status.CHANGED
            outcome.changes = [c.summary for c in changes]
            result.reboot_needed |= any(c.reboot for c in changes)
            self._report_changes(step, changes)
            if self.ctx.check:
                self._notify(step)
                continue
            needs = [c for c in changes if c.precondition]
            if needs:
                self._fail(result, outcome, "; ".join(
                    c.summary + (f"\n{c.diff}" if c.diff else "") for c in needs))
                return
            marks = [n for n in step.notify if n not in self.marked]
            self.marked.update(marks)
            error = self._apply(changes, pending.mark_command(marks) + " || exit 97\n"
                                if marks else "")
            if error is None:
                # one round trip re-reads this step (to verify it) and every later one (so
                # none plans from facts this change made stale)
                facts = gather(self.ctx.session, _step_facts(steps[position:]))
                if step.verify:
                    error = self._verify(step, _facts_of(index, facts))
            if error is not None:
                if marks:  # a failed step notifies nothing, now or on the next run
                    self.ctx.session.run(pending.clear_command(marks))
                    self.marked.difference_update(marks)
                self._fail(result, outcome, error)
                return
            self._notify(step)

    def _owed(self, listing: str) -> None:
        """Handlers an interrupted run left owed on the host are notified now."""
        for name in pending.found(listing, [h.name for h in self.plan.handlers]):
            self.marked.add(name)
            if name not in self.notified:
                self.notified.append(name)
                self.emit("info", f"handler owed by an interrupted run: {name}")

    def _report_changes(self, step: Step, changes: list[Change]) -> None:
        verb = "would change" if self.ctx.check else "changed"
        self.emit("step", f"{verb}: {step.name}")
        for change in changes:
            self.emit("change", change.summary)
            if change.diff:
                self.emit("diff", change.diff)

    def _apply(self, changes: list[Change], prefix: str = "") -> str | None:
        for change in changes:
            for action in change.actions:
                done = self.ctx.session.run(prefix + action.command, action.stdin)
                prefix = ""
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
        outcome.status, outcome.error = Status.FAILED, error
        result.status, result.error = Status.FAILED, f"{outcome.name}: {error}"
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
            outcome = StepResult(f"handler: {handler.name}", Status.CHANGED, [handler.name])
            result.steps.append(outcome)
            try:
                if callable(handler.command):
                    handler.command(self.ctx)
                else:
                    command = handler.command
                    if handler.name in self.marked:  # its marker goes in the same round trip
                        command = f"{{ {command}\n}} && {pending.clear_command([handler.name])}"
                    done = self.ctx.session.run(command)
                    if not done.ok:
                        raise StepFailed(f"exit {done.rc}: {done.stderr.strip()[-2000:]}")
                    self.marked.discard(handler.name)
            except StepFailed as exc:
                self._fail(result, outcome, str(exc))
                return
            if handler.name in self.marked:
                self.ctx.session.run(pending.clear_command([handler.name]))
                self.marked.discard(handler.name)
