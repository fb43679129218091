"""Converger(facts=...): a plan's first round read beforehand by the caller (demo.check reads
every plan of a host in one batch) is not read again; later rounds are read as always."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import pytest

from runbooks.core import converge, pending
from runbooks.core.apply import Applied
from runbooks.core.facts import FactResult
from runbooks.core.results import Status
from runbooks.core.steps import Action, Change, Handler, Plan, Step


class Flag(Step):
    """Wants a file; its fact says whether it is there."""

    def __init__(self, path: str, notify: tuple[str, ...] = ()) -> None:
        self.path, self.name, self.notify = path, f"Ensure {path}", list(notify)

    def facts(self) -> Mapping[str, str]:
        return {"flag": f"test -e {self.path}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [] if facts["flag"].ok else [
            Change(f"create {self.path}", (Action(f"touch {self.path}"),))]


class Host:
    """Files that exist; every gather's commands recorded (one entry per round trip)."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.gathered: list[dict[str, str]] = []

    def gather(self, _session, commands: Mapping[str, str]) -> dict[str, FactResult]:
        self.gathered.append(dict(commands))
        return {k: FactResult(0 if c.split()[-1] in self.present else 1, "")
                if c.startswith("test -e") else FactResult(0, "") for k, c in commands.items()}

    def run_batch(self, session, actions, commands):
        for action in actions:
            self.present.add(action.command.split()[-1])
        return Applied([0] * len(actions), [""] * len(actions), self.gather(session, commands))

    def run(self, command: str, stdin: str | None = None):
        return SimpleNamespace(ok=True, rc=0, stdout="", stderr="")


def run(plan: Plan, host: Host, check: bool, facts, monkeypatch):
    monkeypatch.setattr(converge, "gather", host.gather)
    monkeypatch.setattr(converge, "run_batch", host.run_batch)
    ctx = SimpleNamespace(host=SimpleNamespace(name="h"), session=host, check=check,
                          options={}, log=lambda text: None)
    return converge.Converger(ctx, plan, lambda kind, text: None, facts=facts).run()


def answered(host: Host, commands: Mapping[str, str]) -> dict[str, FactResult]:
    """What a caller's own batch would have read for `commands` (not counted as a round)."""
    saved = list(host.gathered)
    out = host.gather(None, commands)
    host.gathered[:] = saved
    return out


def test_first_reads_name_every_step_fact_and_the_handler_markers():
    plan = Plan(steps=[Flag("/a"), Flag("/b", notify=("restart",))],
                handlers=[Handler("restart", "true")])
    assert converge.first_reads(plan) == {"0/flag": "test -e /a", "1/flag": "test -e /b",
                                          pending.FACT_KEY: pending.LIST_COMMAND}
    assert converge.first_reads(Plan(steps=[Flag("/a")])) == {"0/flag": "test -e /a"}


@pytest.mark.parametrize(("present", "status", "changed"), [
    pytest.param(("/a", "/b"), Status.OK, [], id="converged"),
    pytest.param(("/a",), Status.CHANGED, ["Ensure /b"], id="drifted"),
])
def test_check_mode_with_every_fact_read_beforehand_sends_no_read(
        present, status, changed, monkeypatch):
    host = Host(*present)
    plan = Plan(steps=[Flag("/a"), Flag("/b")])
    facts = answered(host, converge.first_reads(plan))
    result = run(plan, host, True, facts, monkeypatch)
    assert host.gathered == []
    assert result.status is status
    assert [s.name for s in result.steps if s.status is Status.CHANGED] == changed
    assert host.present == set(present)  # check mode: nothing applied


def test_only_the_keys_missing_from_the_given_facts_are_read(monkeypatch):
    host = Host("/a", "/b")
    plan = Plan(steps=[Flag("/a"), Flag("/b")])
    facts = {"0/flag": FactResult(0, "")}
    result = run(plan, host, True, facts, monkeypatch)
    assert host.gathered == [{"1/flag": "test -e /b"}]
    assert result.status is Status.OK


def test_applying_reads_fresh_facts_after_the_changes_not_the_given_ones(monkeypatch):
    host = Host()
    plan = Plan(steps=[Flag("/a"), Flag("/b")])
    facts = answered(host, converge.first_reads(plan))
    result = run(plan, host, False, facts, monkeypatch)
    assert result.status is Status.CHANGED and host.present == {"/a", "/b"}
    # the verify round after the batch read the files again (both present now)
    assert host.gathered and all(c.startswith("test -e") for c in host.gathered[0].values())
    again = run(plan, host, False, answered(host, converge.first_reads(plan)), monkeypatch)
    assert again.status is Status.OK and again.steps and all(
        s.status is Status.OK for s in again.steps)
