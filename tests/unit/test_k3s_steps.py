"""k3s steps with fake sessions: uploads checked on the node, the readiness wait and its
timeout message, the kubeconfig step, the restart handler."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbooks.common.artifacts import Artifact, upload_command
from runbooks.core.facts import FactResult
from runbooks.core.steps import StepFailed
from runbooks.k3s import steps as k3s_steps
from runbooks.k3s.steps import (
    NodesReady,
    SecretFile,
    Started,
    restart_unless_started,
)


@dataclass
class Done:
    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class FakeSession:
    answers: list[Done] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def run(self, command: str, stdin: Any = None) -> Done:
        self.commands.append(command)
        return self.answers.pop(0) if self.answers else Done(0)


@dataclass
class FakeCtx:
    session: FakeSession
    check: bool = False
    others: dict[str, FakeSession] = field(default_factory=dict)
    inventory: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def connector(self) -> Any:
        outer = self

        class Connector:
            def session(self, host: Any) -> FakeSession:
                return outer.others[host]
        return Connector()


class Inv:
    hosts = {"rp1": "rp1"}


def node(name: str, ready: bool) -> dict:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else
                                       "Unknown"}], "nodeInfo": {"kubeletVersion": "v1"}}}


def nodes(*items: dict) -> str:
    return json.dumps({"items": list(items)})


def test_upload_refuses_bytes_that_do_not_match(tmp_path: Path) -> None:
    target = tmp_path / "bin" / "k3s"
    good = b"#!/bin/sh\necho k3s\n"
    digest = hashlib.sha256(good).hexdigest()
    script = upload_command(str(target), digest, "755")
    bad = subprocess.run(["sh", "-c", script], input=b"tampered", capture_output=True)
    assert bad.returncode == 4 and b"nothing was replaced" in bad.stderr
    assert not target.exists() and list(target.parent.iterdir()) == []
    ok = subprocess.run(["sh", "-c", script], input=good, capture_output=True)
    assert ok.returncode == 0 and target.read_bytes() == good
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_artifact_pushes_only_when_the_node_has_other_bytes(tmp_path: Path) -> None:
    local = tmp_path / "k3s-arm64"
    local.write_bytes(b"binary")
    digest = hashlib.sha256(b"binary").hexdigest()
    step = Artifact("/usr/local/bin/k3s", lambda: local, digest, label="k3s-arm64 v1")
    assert step.plan({"sum": FactResult(0, f"{digest}  /usr/local/bin/k3s\n")}) == []
    missing = step.plan({"sum": FactResult(1, "")})
    assert missing[0].summary.startswith("install /usr/local/bin/k3s (6 bytes")
    assert missing[0].actions[0].stdin == b"binary"
    other = step.plan({"sum": FactResult(0, f"{'0' * 64}  /usr/local/bin/k3s\n")})
    assert other[0].summary.startswith("replace ")


@pytest.mark.parametrize("enabled, active, expected", [
    ("enabled", "active", []),
    ("enabled", "activating", []),
    ("disabled", "inactive", ["enable k3s-agent", "start k3s-agent"]),
    ("enabled", "failed", ["start k3s-agent"]),
], ids=["running", "still-joining", "fresh", "failed"])
def test_started_never_waits_for_readiness(enabled: str, active: str,
                                           expected: list[str]) -> None:
    step = Started("k3s-agent")
    changes = step.plan({"enabled": FactResult(0, enabled), "active": FactResult(0, active)})
    assert [c.summary for c in changes] == expected
    assert all("--no-block" in c.actions[0].command for c in changes if "start" in c.summary)


def test_restart_handler_skips_a_unit_this_run_started() -> None:
    started = Started("k3s")
    session = FakeSession()
    started.started_now = True
    restart_unless_started("k3s", started)(FakeCtx(session))  # type: ignore[arg-type]
    assert session.commands == []
    started.started_now = False
    restart_unless_started("k3s", started)(FakeCtx(session))  # type: ignore[arg-type]
    assert session.commands == ["systemctl daemon-reload && systemctl restart --no-block k3s"]


def test_nodes_ready_waits_then_reports_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k3s_steps.time, "sleep", lambda _s: None)
    session = FakeSession([Done(0, nodes(node("rp0", True), node("rp1", True)))])
    step = NodesReady(FakeCtx(session), {"rp0": "k3s", "rp1": "k3s-agent"},  # type: ignore
                      timeout=30)
    assert step.plan({"nodes": FactResult(0, nodes(node("rp0", True), node("rp1", True)))}) \
        == []
    changes = step.plan({"nodes": FactResult(0, nodes(node("rp0", True)))})
    assert changes[0].summary.startswith("waited")


def test_nodes_ready_timeout_names_the_node_and_its_log_lines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(k3s_steps.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(k3s_steps.time, "sleep", lambda _s: None)
    session = FakeSession([Done(0, nodes(node("rp0", True), node("rp1", False)))] * 50)
    logs = FakeSession([Done(0, 'level=error msg="Failed to validate connection: 401 '
                                'Unauthorized"\n')])
    ctx = FakeCtx(session, others={"rp1": logs}, inventory=Inv())
    step = NodesReady(ctx, {"rp0": "k3s", "rp1": "k3s-agent"}, timeout=20)  # type: ignore
    with pytest.raises(StepFailed) as failed:
        step.plan({"nodes": FactResult(0, nodes(node("rp0", True)))})
    message = str(failed.value)
    assert message.startswith("not Ready after 20 s: rp1 (NotReady)")
    assert "last log lines of k3s-agent on rp1:" in message and "401 Unauthorized" in message


def test_check_mode_only_says_it_would_wait() -> None:
    session = FakeSession()
    step = NodesReady(FakeCtx(session, check=True), {"rp0": "k3s"}, timeout=9)  # type: ignore
    changes = step.plan({"nodes": FactResult(1, "")})
    assert changes[0].summary == "would wait up to 9 s for Ready: rp0 (API not answering)"
    assert session.commands == []


def test_nodes_ready_stops_waiting_for_a_node_whose_run_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k3s_steps.time, "sleep", lambda _s: None)
    session = FakeSession([Done(0, nodes(node("rp0", True)))] * 3)
    failed: dict[str, str] = {}
    step = NodesReady(FakeCtx(session), {"rp0": "k3s", "rp1": "k3s-agent"},  # type: ignore
                      timeout=600, failed=failed)
    real = session.run

    def run(command: str, stdin: Any = None) -> Done:
        failed["rp1"] = "Ensure /usr/local/bin/k3s: sha256 of it on the node is 00\nmore"
        return real(command, stdin)

    session.run = run  # type: ignore[method-assign]  # rp1's own run fails meanwhile
    changes = step.plan({"nodes": FactResult(0, nodes(node("rp0", True)))})
    # this host does not fail for rp1 (rp1's row reports it): the others were waited for
    assert [c.summary for c in changes] == [
        "waited 0 s until every node was Ready but rp1 (its own run failed: "
        "Ensure /usr/local/bin/k3s: sha256 of it on the node is 00)"]
    assert len(session.commands) == 1   # one more look, then no waiting for the timeout


def test_nodes_ready_still_waits_for_the_others_when_one_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k3s_steps.time, "sleep", lambda _s: None)
    session = FakeSession([Done(0, nodes(node("rp0", True), node("lp0", False))),
                           Done(0, nodes(node("rp0", True), node("lp0", True)))])
    step = NodesReady(FakeCtx(session), {"rp0": "k3s", "rp1": "k3s-agent",  # type: ignore
                                         "lp0": "k3s-agent"},
                      timeout=600, failed={"rp1": "connection to rp1 lost"})
    changes = step.plan({"nodes": FactResult(0, nodes(node("rp0", True)))})
    assert changes[0].summary.endswith("Ready but rp1 (its own run failed: connection to rp1 lost)")
    assert len(session.commands) == 2   # waited until lp0 was Ready


def test_secret_files_are_staged_with_the_writes_next_to_them(tmp_path: Path) -> None:
    """k3s's unit, join token and env file in one batch: each left validated in a temporary
    file, then one `sync` of all three and the renames (the engine's staged write, as every
    file step's); the secret's content is never in argv and its diff never shown."""
    from runbooks.core.apply import Batch
    from runbooks.core.steps import File

    unit, token, env = (tmp_path / n for n in ("k3s-agent.service", "join-token", "k3s.env"))
    token.write_text("old token\n")
    token.chmod(0o600)
    steps = [File(str(unit), "[Unit]\n"), SecretFile(str(token), "K10::server:pw\n"),
             SecretFile(str(env), "K3S_TOKEN_FILE=/etc/rancher/k3s/join-token\n")]
    missing = FactResult(1, "")
    changes = [c for step in steps for c in step.plan({"file": missing})]
    actions = [a for c in changes for a in c.actions]
    assert all(a.staged and a.whole for a in actions)
    assert [a.staged[1] for a in actions if a.staged] == [str(unit), str(token), str(env)]
    assert [c.diff for c in changes[1:]] == ["(content hidden: it holds secrets)"] * 2
    # on its own (not batched) the secret travels on stdin, never in the command
    assert actions[1].stdin == "K10::server:pw\n" and "server:pw" not in actions[1].command
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sync").write_text(f'#!/bin/sh\necho "$#" >> {tmp_path}/syncs\n')
    (fake / "sync").chmod(0o755)
    done = subprocess.run(["sh", "-s"], input=Batch(actions).script(), text=True,
                          capture_output=True, check=False,
                          env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "syncs").read_text() == "3\n"  # one sync, of the three files
    assert (unit.read_text(), token.read_text(), env.read_text()) == (
        "[Unit]\n", "K10::server:pw\n", "K3S_TOKEN_FILE=/etc/rancher/k3s/join-token\n")
    assert [oct(p.stat().st_mode & 0o777) for p in (unit, token, env)] == ["0o644", "0o600",
                                                                          "0o600"]
    assert sorted(p.name for p in tmp_path.iterdir() if ".greenroom." in p.name) == []
    # and converged: a second plan from what is there now wants nothing
    for step, path in zip(steps[1:], (token, env), strict=True):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert step.plan({"file": FactResult(0, f"600 root root\n{digest}  {path}\n")}) == []
