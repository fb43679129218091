"""Handlers owed to a host survive a lost connection (runbooks.core.pending): a run cut after
a change but before its handler ran leaves a marker on the host, and the next run, which
finds the file converged, still runs the handler, then forgets it.

The "host" is a local directory driven through /bin/sh (the real scripts the converger
sends); the marker directory is moved under it, so nothing on this machine changes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.core import converge, pending
from runbooks.core.facts import FactResult
from runbooks.core.results import Status
from runbooks.core.session import CommandResult, HostUnreachable
from runbooks.core.steps import Action, Change, Handler, Plan, Step


class Shell:
    """A session that runs every command with /bin/sh in `root`; `cut_on` makes the first
    command containing it lose the connection instead."""

    def __init__(self, root: Path, cut_on: str | None = None) -> None:
        self.root = root
        self.cut_on = cut_on
        self.ran: list[str] = []

    def run(self, command: str, stdin: str | None = None, **_: object) -> CommandResult:
        if self.cut_on is not None and self.cut_on in command:
            self.cut_on = None
            raise HostUnreachable("connection to h lost while a command ran")
        self.ran.append(command + "\n" + (stdin or ""))  # a batch's script is its stdin
        done = subprocess.run(["/bin/sh", "-c", command], input=stdin or "", cwd=self.root,
                              capture_output=True, text=True, check=False)
        return CommandResult(done.returncode, done.stdout, done.stderr)


class Config(Step):
    """Wants `conf` to say `new`; notifies the restart."""

    name = "Ensure conf"
    notify = ("restart svc",)

    def facts(self) -> Mapping[str, str]:
        return {"conf": "cat conf"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if facts["conf"].out == "new":
            return []
        return [Change("update conf", (Action("printf new > conf"),))]


RESTART = "echo restarted >> svc.log"


def plan(handler: str = RESTART) -> Plan:
    return Plan().add(Config()).handler(Handler("restart svc", handler))


@pytest.fixture
def host(tmp_path, monkeypatch):
    markers = tmp_path / "var-lib-greenroom-handlers"
    monkeypatch.setattr(pending, "DIRECTORY", str(markers))
    monkeypatch.setattr(pending, "LIST_COMMAND", f"ls -1 {markers} 2>/dev/null || true")
    return tmp_path


def run(root: Path, cut_on: str | None = None, check: bool = False, handler: str = RESTART):
    session = Shell(root, cut_on)
    events: list[tuple[str, str]] = []
    ctx = SimpleNamespace(host=SimpleNamespace(name="h"), session=session, check=check,
                          options={}, log=lambda text: None)
    result = converge.Converger(ctx, plan(handler), lambda k, t: events.append((k, t))).run()
    return result, events, session


def markers(root: Path) -> list[str]:
    folder = root / "var-lib-greenroom-handlers"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def restarts(root: Path) -> int:
    log = root / "svc.log"
    return log.read_text().count("restarted") if log.exists() else 0


def test_a_handler_cut_off_runs_on_the_next_run_then_is_forgotten(host):
    cut, _, _ = run(host, cut_on="echo restarted")
    assert cut.status is Status.UNREACHABLE
    assert (host / "conf").read_text() == "new" and restarts(host) == 0
    assert markers(host) == [pending.marker("restart svc")]

    checked, events, session = run(host, check=True)
    assert ("info", "would run handler: restart svc") in events
    assert restarts(host) == 0 and markers(host) == [pending.marker("restart svc")]

    again, events, session = run(host)
    assert again.status is Status.CHANGED and again.changed == 1  # the handler alone
    assert ("info", "handler owed by an interrupted run: restart svc") in events
    assert restarts(host) == 1 and markers(host) == []

    third, events, session = run(host)
    assert third.status is Status.OK and restarts(host) == 1
    assert len(session.ran) == 1  # a converged host: the one fact round trip


def test_an_uncut_run_leaves_no_marker_and_costs_no_extra_round_trip(host):
    result, _, session = run(host)
    assert result.status is Status.CHANGED and restarts(host) == 1
    assert markers(host) == []
    # facts; the change (its marker in front) with the re-check; the handler (marker cleared)
    assert len(session.ran) == 3
    change = session.ran[1]
    assert change.index(f"mkdir -p {pending.DIRECTORY}") < change.index("printf new > conf")


@pytest.mark.parametrize("handler", [
    pytest.param(f"{RESTART} && exit 0", id="ends-with-exit-0"),
    pytest.param(f"for i in 1 2; do {RESTART} && exit 0; done; exit 1", id="exits-from-a-loop"),
    pytest.param(f"cd / && cd - >/dev/null && {RESTART}", id="changes-directory"),
])
def test_a_handler_that_exits_still_clears_its_marker(host, handler):
    first, _, _ = run(host, handler=handler)
    assert first.status is Status.CHANGED and restarts(host) == 1
    assert markers(host) == []  # the handler's `exit` must not skip the marker's removal
    again, events, _ = run(host, handler=handler)
    assert again.status is Status.OK and again.changed == 0 and restarts(host) == 1
    assert not any("owed" in text for _, text in events)


def test_a_failing_handler_keeps_its_marker_for_the_next_run(host):
    failed, _, _ = run(host, handler=f"{RESTART} && exit 3")
    assert failed.status is Status.FAILED and markers(host) == [pending.marker("restart svc")]
    fixed, events, _ = run(host)
    assert ("info", "handler owed by an interrupted run: restart svc") in events
    assert fixed.status is Status.CHANGED and markers(host) == []


def test_marker_names_are_safe_and_distinct():
    names = ["restart frr", "reload frr", "restart dnsmasq@virbr1", "x/../../etc", "reboot"]
    made = [pending.marker(n) for n in names]
    assert len(set(made)) == len(names)
    assert all("/" not in m and " " not in m for m in made)
    assert pending.found("\n".join(made[:2]) + "\nunrelated\n", names) == names[:2]


def test_a_step_that_fails_leaves_no_handler_owed(host):
    (host / "conf").mkdir()  # `printf new > conf` fails: a directory is in the way
    failed, _, _ = run(host)
    assert failed.status is Status.FAILED and markers(host) == [] and restarts(host) == 0
    (host / "conf").rmdir()
    fixed, _, _ = run(host)
    assert fixed.status is Status.CHANGED and restarts(host) == 1 and markers(host) == []
