"""demo's run mechanics without hosts: quiet and --verbose output, colours only on a terminal,
the masked --report, the images phase as a phase of the run, and `inv demo.history`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from invoke import Context

from runbooks.core import secrets
from runbooks.core.results import HostResult, Status, StepResult
from runbooks.core.runner import RunResult
from runbooks.demo import history, images, run, screen
from runbooks.demo.tasks import history as history_task
from runbooks.demo.verdict import HostReport, Verdict
from tests.unit.test_demo_parts import LAB

INV = str(Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def result(status: Status, changes: tuple[str, ...] = ()) -> RunResult:
    step = StepResult("Ensure x", status, list(changes))
    return RunResult("pi-prep", False, {"rp0": HostResult("rp0", status, [step], 0.2)}, 0.2)


def test_quiet_prints_a_line_per_phase_and_verbose_everything():
    quiet, loud = run.Output(io.StringIO(), False), run.Output(io.StringIO(), True)
    for output in (quiet, loud):
        output.detail("rp0  pi-prep: gathered 12 facts")
        run._progress("converge", result(Status.CHANGED, ("swap off",)), None, False, output)
    assert loud.sink() is loud.out and quiet.sink() is not quiet.out  # the runner's lines
    assert "gathered 12 facts" not in quiet.out.getvalue()
    assert "gathered 12 facts" in loud.out.getvalue()
    [line] = quiet.out.getvalue().splitlines()
    assert line.split()[:5] == ["converge", "pi-prep", "1", "host(s)", "1"]


@pytest.mark.parametrize("out, coloured", [
    pytest.param(io.StringIO(), False, id="pipe-or-file"),
    pytest.param(Tty(), True, id="terminal"),
])
def test_colours_only_on_a_terminal(out, coloured):
    output = run.Output(out, False)
    run._progress("converge", result(Status.FAILED), 0.1, False, output)
    bad = HostReport("rp0", False, [Verdict("rp0", "demo", "reachable", False, "timed out")])
    text = out.getvalue() + screen.render("t", [bad], {}, [], False, out)
    assert ("\033[31m" in text) is coloured
    assert "FAILED" in text and "NO-GO" in text


def test_slow_step_is_flagged_against_its_usual_time():
    output = run.Output(io.StringIO(), False)
    run._progress("converge", result(Status.OK), 0.05, False, output)  # 0.2 s vs 0.05 s
    assert "SLOW" not in output.out.getvalue()  # four times, but only 0.15 s more
    slow = result(Status.OK)
    slow.seconds = 4.1
    run._progress("converge", slow, 0.6, False, output)
    assert output.out.getvalue().splitlines()[-1].endswith("4.1 s  (usually 0.6 s)  SLOW")


def test_report_and_history_are_masked(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "state_dir", lambda: tmp_path / "state")
    token = "K10-secret-join-token-for-the-test"
    secrets.register(token)
    outcome = run.Outcome("demo.reset", "lab")
    outcome.phases.append(("converge", result(Status.FAILED)))
    outcome.phases[0][1].hosts["rp0"].error = f"join refused for {token}"
    outcome.reports = [HostReport("rp0", True, [Verdict("rp0", "k3s", "token", False,
                                                        f"the node holds {token}")])]
    output = run.Output(io.StringIO(), False)
    report = tmp_path / "run.json"
    run.finish(outcome, 0.0, output, str(report), {}, "demo.reset  site lab")
    written = report.read_text() + history.history_path("lab").read_text() + \
        output.out.getvalue()
    assert token not in written and secrets.MASK in written
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["phases"][0]["phase"] == "converge"
    assert not list(report.parent.glob(".*.tmp"))  # written atomically


class FakeConnector:
    def session(self, host):  # noqa: ANN001, ANN201
        return object()


@pytest.mark.parametrize("pushed, check, status, changed, ok", [
    pytest.param((False, "every listed image is there"), False, "ok", 0, True,
                 id="nothing-missing"),
    pytest.param((True, "pushed 1 image(s) from x"), False, "changed", 1, True, id="pushed"),
    pytest.param((True, "would push the images of x"), True, "changed", 1, True,
                 id="check-mode"),
    pytest.param(RuntimeError("lab/hello:1: 500"), False, "failed", 0, False,
                 id="push-failed"),
])
def test_images_phase_is_a_phase_of_the_run(monkeypatch, pushed, check, status, changed, ok):
    def push_missing(inventory, session, check_):  # noqa: ANN001, ANN202
        assert check_ is check
        if isinstance(pushed, Exception):
            raise pushed
        return pushed

    monkeypatch.setattr(images, "push_missing", push_missing)
    outcome = run.Outcome("demo.reset", "lab", check_mode=check)
    output = run.Output(io.StringIO(), False)
    run.images_phase(LAB, list(LAB.hosts.values()), FakeConnector(), check, output,
                     outcome, {})
    [(phase, found)] = outcome.phases
    assert (phase, found.runbook, list(found.hosts)) == ("images", "demo.images", ["dell"])
    assert found.hosts["dell"].status == status
    assert (outcome.changed, found.ok) == (changed, ok)
    assert "images registry" in outcome.steps
    assert "images   demo.images" in output.out.getvalue()


def test_images_phase_skips_an_unreachable_registry(monkeypatch):
    monkeypatch.setattr(images, "push_missing", lambda *a: pytest.fail("tried the registry"))
    outcome = run.Outcome("demo.reset", "lab", unreachable={"dell": "timed out"})
    run.images_phase(LAB, list(LAB.hosts.values()), FakeConnector(), False,
                     run.Output(io.StringIO(), False), outcome, {})
    assert outcome.phases == []


def test_history_task_prints_the_last_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(history, "state_dir", lambda: tmp_path)
    history_task(Context(), inventory=INV)
    assert capsys.readouterr().out.startswith("no demo runs recorded for site lab yet")
    for command, ok in (("demo.check", False), ("demo.reset", True), ("demo.check", True)):
        history.record("lab", history.new_run(command, ok, 2.5,
                                              {command: 2.5, "converge pi-prep rp0": 0.4}))
    history_task(Context(), inventory=INV, last=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WHEN", "(UTC)", "COMMAND", "RESULT", "TIME", "CHANGED",
                                "SLOWEST", "STEP"]
    assert [line.split()[2:4] for line in lines[1:]] == [["demo.reset", "GO"],
                                                         ["demo.check", "GO"]]
    assert lines[1].endswith("converge pi-prep rp0 0.4 s")
    history_task(Context(), inventory=INV, last=1, json_=True)
    [last] = json.loads(capsys.readouterr().out)
    assert last["command"] == "demo.check" and last["ok"] is True


@pytest.mark.parametrize("reports, green, unreachable", [
    pytest.param([HostReport("dell", True, [Verdict("dell", "demo", "clock", True, "+0.1 s")]),
                  HostReport("rp0", True, [Verdict("rp0", "pi-prep", "drift", True, "ok")])],
                 True, {}, id="go-nothing-to-reset"),
    pytest.param([HostReport("dell", True, [Verdict("dell", "demo", "clock", True, "+0.1 s")]),
                  HostReport("rp0", True, [Verdict("rp0", "pi-prep", "drift", False, "swap")])],
                 False, {}, id="drift-resets"),
    pytest.param([HostReport("dell", True, [Verdict("dell", "demo", "clock", True, "+0.1 s")]),
                  HostReport("rp0", False, [Verdict("rp0", "demo", "reachable", False,
                                                    "connection refused")])],
                 False, {"rp0": "connection refused"}, id="unreachable-not-tried-again"),
])
def test_reset_starts_with_the_check(monkeypatch, reports, green, unreachable):
    def check_all(inventory, connector, hosts, log, parallel):  # noqa: ANN001, ANN202
        for report in reports:
            report.timings = {"checks": 0.1}
        return reports

    monkeypatch.setattr(run, "check_all", check_all)
    hosts = [LAB.hosts["dell"], LAB.hosts["rp0"]]
    outcome = run.Outcome("demo.reset", "lab")
    output = run.Output(io.StringIO(), False)
    assert run.already_green(LAB, hosts, FakeConnector(), 2, output, outcome, {}) is green
    assert outcome.unreachable == unreachable
    said = output.out.getvalue()
    if green:  # the check is the result: GO, no phase ran
        assert outcome.ok and outcome.phases == [] and "nothing to reset" in said
        assert set(outcome.steps) >= {"check", "check dell", "check rp0 checks"}
    else:  # the phases follow; the final check's times are kept apart from this one's
        assert outcome.reports == [] and "1 host(s) to put right" in said
        assert set(outcome.steps) == {"precheck", "precheck dell", "precheck dell checks",
                                      "precheck rp0", "precheck rp0 checks"}
