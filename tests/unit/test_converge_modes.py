"""The converger alone knows check mode: preconditions, Verify steps, composite steps and
status values, from fact tables (no host)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import pytest

from runbooks.core import converge
from runbooks.core.apply import Applied
from runbooks.core.facts import FactResult
from runbooks.core.results import Status
from runbooks.core.steps import Action, Change, Composite, Plan, Step, StepFailed, Verify


class Flag(Step):
    """Wants /flag; the fact says whether it is there."""

    name = "Ensure the flag"

    def __init__(self, state: dict[str, bool]) -> None:
        self.state = state

    def facts(self) -> Mapping[str, str]:
        return {"flag": "test -e /flag"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [] if facts["flag"].ok else [Change("create /flag", (Action("touch /flag"),))]


class FlagVerified(Verify):
    name = "Verify the flag"

    def facts(self) -> Mapping[str, str]:
        return {"flag": "test -e /flag"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not facts["flag"].ok:
            raise StepFailed("no /flag")
        return []


class Needs(Step):
    name = "Ensure the other runbook ran"

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [Change("run the other runbook first")]


class FakeHost:
    """Answers fact commands from its state; applying `touch /flag` sets it."""

    def __init__(self, flag: bool = False) -> None:
        self.flag = flag
        self.ran: list[str] = []

    def gather(self, _session, commands: Mapping[str, str]) -> dict[str, FactResult]:
        return {k: FactResult(0 if self.flag else 1, "") for k in commands}

    def run(self, command: str, stdin: str | None = None):
        self.ran.append(command)
        self.flag = self.flag or command == "touch /flag"
        return SimpleNamespace(ok=True, rc=0, stdout="", stderr="")

    def run_batch(self, session, actions, commands):
        """The batch's contract (tested on a real shell in test_engine_steps): actions in
        order up to the first failure, then the facts when none failed."""
        rcs = [self.run(a.command, a.stdin).rc for a in actions]
        return Applied(rcs, [""] * len(rcs), self.gather(session, commands))


def converge_plan(plan: Plan, check: bool, host: FakeHost, monkeypatch):
    monkeypatch.setattr(converge, "gather", host.gather)
    monkeypatch.setattr(converge, "run_batch", host.run_batch)
    events: list[tuple[str, str]] = []
    ctx = SimpleNamespace(host=SimpleNamespace(name="h"), session=host, check=check,
                          options={}, log=lambda text: None)
    result = converge.Converger(ctx, plan, lambda kind, text: events.append((kind, text))).run()
    return result, events


@pytest.mark.parametrize("check,status,ran", [
    (True, Status.CHANGED, []),
    (False, Status.CHANGED, ["touch /flag"]),
], ids=["check", "apply"])
def test_verify_after_a_change(monkeypatch, check, status, ran):
    host = FakeHost(flag=False)
    plan = Plan().add(Flag({}), FlagVerified())
    result, events = converge_plan(plan, check, host, monkeypatch)
    assert result.status is status and host.ran == ran
    said = [text for _kind, text in events]
    assert any(t.startswith("would verify after the changes above") for t in said) == check


def test_verify_without_an_earlier_change_fails_even_in_check_mode(monkeypatch):
    result, _ = converge_plan(Plan().add(FlagVerified()), True, FakeHost(flag=False),
                              monkeypatch)
    assert result.status is Status.FAILED and "no /flag" in (result.error or "")


def test_a_precondition_is_a_change_in_check_mode_and_a_failure_otherwise(monkeypatch):
    checked, _ = converge_plan(Plan().add(Needs()), True, FakeHost(), monkeypatch)
    assert checked.status is Status.CHANGED
    assert checked.steps[0].changes == ["run the other runbook first"]
    applied, _ = converge_plan(Plan().add(Needs()), False, FakeHost(), monkeypatch)
    assert applied.status is Status.FAILED
    assert applied.error == "Ensure the other runbook ran: run the other runbook first"


def test_a_composite_reads_each_part_under_its_own_prefix():
    seen = []

    class Part(Step):
        def __init__(self, name: str) -> None:
            self.name = name

        def facts(self) -> Mapping[str, str]:
            return {"x": f"echo {self.name}"}

        def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
            seen.append(facts["x"].out)
            return [Change(f"{self.name} done", (Action("true"),))]

    both = Composite("Ensure a and b", [Part("a"), Part("b")])
    assert both.facts() == {"0.x": "echo a", "1.x": "echo b"}
    changes = both.plan({"0.x": FactResult(0, "A"), "1.x": FactResult(0, "B")})
    assert [c.summary for c in changes] == ["a done", "b done"] and seen == ["A", "B"]


def test_statuses_are_their_report_words():
    assert [str(s) for s in Status] == ["ok", "changed", "failed", "unreachable"]
    assert [s.good for s in Status] == [True, True, False, False]


def test_every_report_is_masked_where_it_is_written(tmp_path):
    """demo.rehearse --report and every runbook's --report go through write_json."""
    from runbooks.core import secrets
    from runbooks.core.runner import write_json

    secrets.register("s3cret-token-abc")  # the autouse fixture forgets it afterwards
    write_json({"error": "login with s3cret-token-abc failed"}, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert "s3cret" not in text and secrets.MASK in text

