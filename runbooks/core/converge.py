"""Converge one host: plan every step from facts, print or apply the changes, re-check.

Facts for all steps are gathered in one round trip. In check mode the changes are printed
(with a unified diff for every file) and nothing is applied. Otherwise the changes are applied,
then the facts of the remaining steps are read again (so no step plans from stale facts) and
each changed step must now plan no change, else it failed. Consecutive steps whose scopes
(`Step.scope`) are disjoint cannot make each other's facts stale: their changes and the facts
read after them travel in one round trip (`runbooks.core.apply`), so a converging host pays
about one round trip per group of independent steps, not two per changed step. A step that
cannot name its scope (a command, a service, a package) is planned only from facts read after
every earlier change, as before. Notified handlers run once each at the end, in the order the
plan declared them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runbooks.core import pending as marks
from runbooks.core.apply import run_batch
from runbooks.core.context import HostContext
from runbooks.core.facts import FactResult, gather
from runbooks.core.results import HostResult, Status, StepResult
from runbooks.core.session import HostUnreachable
from runbooks.core.steps.base import (
    Action,
    Change,
    Plan,
    Step,
    StepFailed,
    Verify,
    scopes_overlap,
)


def _step_facts(steps: list[tuple[int, Step]]) -> dict[str, str]:
    commands: dict[str, str] = {}
    for index, step in steps:
        for key, command in step.facts().items():
            commands[f"{index}/{key}"] = command
    return commands


def _facts_of(index: int, facts: Mapping[str, FactResult]) -> dict[str, FactResult]:
    prefix = f"{index}/"
    return {k[len(prefix):]: v for k, v in facts.items() if k.startswith(prefix)}


def first_reads(plan: Plan) -> dict[str, str]:
    """The fact commands a Converger of `plan` reads in its first round, by key: a caller
    may gather them beforehand (with other reads of the host, in one batch) and hand the
    results to `Converger(..., facts=...)`. In check mode that round is the whole run."""
    commands = _step_facts(list(enumerate(plan.steps)))
    if plan.handlers:
        commands[marks.FACT_KEY] = marks.LIST_COMMAND
    return commands


@dataclass
class _Pending:
    """A step planned with changes, waiting to be applied with the next batch."""

    position: int  # in the plan's step list
    index: int  # its fact prefix
    step: Step
    outcome: StepResult
    changes: list[Change]
    scope: frozenset[str] | None
    steps_seen: int  # len(result.steps) once it was planned


def _summary_of(pending: list[_Pending], numbered: tuple[int, Action]) -> str:
    n, action = numbered
    return next(c.summary for c in pending[n].changes if action in c.actions)


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

    def __init__(self, ctx: HostContext, plan: Plan, emit: Callable[[str, str], None],
                 facts: Mapping[str, FactResult] | None = None) -> None:
        self.ctx = ctx
        self.plan = plan
        self.emit = emit  # emit(kind, text): kind in step|diff|error|info
        # the first round's facts, read beforehand by the caller (`first_reads`): e.g. one
        # batch for several plans of a host; keys missing from it are read as usual
        self.facts = facts
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
        commands = first_reads(self.plan)
        known = self.facts or {}
        facts = {key: known[key] for key in commands if key in known}
        rest = {k: c for k, c in commands.items() if k not in known}
        if rest:
            facts.update(gather(self.ctx.session, rest))
        if self.plan.handlers:
            self._owed(facts[marks.FACT_KEY].out)
        pending: list[_Pending] = []
        for position, (index, step) in enumerate(steps):
            scope = step.scope()
            if pending and (scope is None or any(
                    p.scope is None or scopes_overlap(scope, p.scope) for p in pending)):
                # this step's facts may be stale: apply what is pending, read them again
                fresh = self._flush(result, pending, steps)
                if fresh is None:
                    return
                facts, pending = fresh, []
            outcome = StepResult(step.name)
            result.steps.append(outcome)
            try:
                changes = step.plan(_facts_of(index, facts))
            except StepFailed as exc:
                if self.ctx.check and isinstance(step, Verify) and result.changed:
                    self.emit("step", f"would verify after the changes above: {step.name} "
                                      f"(now: {exc})")
                    continue
                if self._flush_before_failing(result, pending, steps, outcome):
                    self._fail(result, outcome, str(exc))
                return
            if not changes:
                continue
            outcome.status = Status.CHANGED
            outcome.changes = [c.summary for c in changes]
            result.reboot_needed |= any(c.reboot for c in changes)
            if self.ctx.check:
                self._report_changes(step, changes)
                self._notify(step)
                continue
            needs = [c for c in changes if c.precondition]
            if needs:
                if self._flush_before_failing(result, pending, steps, outcome):
                    self._report_changes(step, changes)
                    self._fail(result, outcome, "; ".join(
                        c.summary + (f"\n{c.diff}" if c.diff else "") for c in needs))
                return
            pending.append(_Pending(position, index, step, outcome, changes, scope,
                                    len(result.steps)))
        if pending:
            self._flush(result, pending, steps)

    def _owed(self, listing: str) -> None:
        """Handlers an interrupted run left owed on the host are notified now."""
        for name in marks.found(listing, [h.name for h in self.plan.handlers]):
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

    def _flush_before_failing(
        self, result: HostResult, pending: list[_Pending], steps: list[tuple[int, Step]],
        outcome: StepResult,
    ) -> bool:
        """Apply what is pending before a step fails (as if each had been applied on its
        own, before it); False when one of them failed first (the step never ran)."""
        if not pending or self._flush(result, pending, steps) is not None:
            return True
        result.steps[:] = [s for s in result.steps if s is not outcome]
        return False

    def _flush(
        self, result: HostResult, pending: list[_Pending], steps: list[tuple[int, Step]],
    ) -> dict[str, FactResult] | None:
        """Apply the pending steps' changes, in order, and verify each: one round trip for
        the actions and the facts of every step from the first pending one on (so later
        steps plan from fresh facts). Returns those facts, or None when a step failed (the
        steps planned after it are dropped from the result: they never ran)."""
        actions = [(n, a) for n, e in enumerate(pending) for c in e.changes for a in c.actions]
        commands = _step_facts(steps[pending[0].position:])
        marked = self._marked_first_actions(pending, actions)
        applied = run_batch(self.ctx.session, marked, commands)
        error: tuple[int, str] | None = None
        if len(applied.rcs) < len(actions) and all(rc == 0 for rc in applied.rcs):
            raise HostUnreachable(f"connection to {self.ctx.host.name} lost while changes "
                                  "were applied")
        if applied.facts is None:
            failed = len(applied.rcs) - 1
            detail = (applied.outputs[failed].strip() or applied.stderr.strip())[-2000:]
            error = (failed, f"{_summary_of(pending, actions[failed])}: exit "
                             f"{applied.rcs[failed]}: {detail or 'no output'}")
            # the steps applied before it are verified as always
            facts = gather(self.ctx.session, commands)
        else:
            facts = applied.facts
        failed_entry = actions[error[0]][0] if error is not None else len(pending)
        ok = True
        first_bad = len(pending)
        for n, entry in enumerate(pending):
            if n > failed_entry:
                break
            self._report_changes(entry.step, entry.changes)
            problem = error[1] if n == failed_entry and error is not None else None
            if problem is None and entry.step.verify:
                problem = self._verify(entry.step, _facts_of(entry.index, facts))
            if problem is not None:
                first_bad = min(first_bad, n)
                if ok:
                    self._fail(result, entry.outcome, problem)
                else:
                    entry.outcome.status, entry.outcome.error = Status.FAILED, problem
                ok = False
                continue
            self._notify(entry.step)
        if error is not None:
            # steps planned after the failed one were never applied: not part of the run
            del result.steps[pending[failed_entry].steps_seen:]
        if not ok:  # a failed step, and those never applied, notify nothing, now or later
            owed = [n for entry in pending[first_bad:] for n in entry.step.notify
                    if n in self.marked and n not in self.notified]
            if owed:
                self.ctx.session.run(marks.clear_command(owed))
                self.marked.difference_update(owed)
        return facts if ok else None

    def _marked_first_actions(self, pending: list[_Pending],
                              actions: list[tuple[int, Action]]) -> list[Action]:
        """The actions to send: the first one of each step that notifies handlers not yet
        owed on the host leaves their markers first (core.pending), in the same trip."""
        out: list[Action] = []
        seen: set[int] = set()
        for n, action in actions:
            names = [] if n in seen else [x for x in pending[n].step.notify
                                          if x not in self.marked]
            seen.add(n)
            if names:
                self.marked.update(names)
                first = f"{marks.mark_command(names)} || exit 97\n"
                action = Action(first + action.command, action.stdin,
                                None if action.whole is None else first + action.whole,
                                action.staged)
            out.append(action)
        return out

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
                        # a subshell: a handler may end with `exit 0`, which must not skip it
                        command = f"( {command}\n) && {marks.clear_command([handler.name])}"
                    done = self.ctx.session.run(command)
                    if not done.ok:
                        raise StepFailed(f"exit {done.rc}: {done.stderr.strip()[-2000:]}")
                    self.marked.discard(handler.name)
            except StepFailed as exc:
                self._fail(result, outcome, str(exc))
                return
            if handler.name in self.marked:
                self.ctx.session.run(marks.clear_command([handler.name]))
                self.marked.discard(handler.name)
