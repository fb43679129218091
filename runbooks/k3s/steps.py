"""Steps of the k3s runbook that the engine's generic ones do not cover.

- `Started`: the unit enabled and started without blocking (a k3s agent that cannot join
  stays "activating" for ever; the readiness wait reports it, with its log lines).
- `NodesReady`: on the first server, every node of the inventory Ready, waited for with a
  timeout; a node that does not get there is named with its last log lines.

The release files on the node (`Artifact`) and the kubeconfig merge (`KubeconfigMerged`) are
the common layer's (runbooks.common.artifacts, runbooks.common.kubeconfig_step), shared with
the microk8s runbook.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runbooks.common.kubectl import nodes_fact
from runbooks.core import secrets
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed
from runbooks.core.steps.files import SECRET_DIFF, staged_write, write_command
from runbooks.core.steps.system import unit_active, unit_enabled

if TYPE_CHECKING:
    from runbooks.core.context import HostContext


# A change already made while planning (a wait, a local file): an action that does nothing,
# so the engine does not take it for a precondition left to the user.
DONE = (Action(":"),)


class Started(Step):
    """Ensure a unit is enabled and started (without waiting for it to be ready)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.name = f"Ensure {unit} enabled and started"
        self.started_now = False

    def facts(self) -> Mapping[str, str]:
        return {"enabled": unit_enabled(self.unit).command,
                "active": unit_active(self.unit).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        u = shlex.quote(self.unit)
        changes = []
        if unit_enabled(self.unit).read(facts, "enabled") != "enabled":
            changes.append(Change(f"enable {self.unit}", (Action(
                f"systemctl daemon-reload && systemctl enable {u}"),)))
        if unit_active(self.unit).read(facts, "active") not in ("active", "activating",
                                                                 "reloading"):
            self.started_now = True
            changes.append(Change(f"start {self.unit}", (Action(
                f"systemctl daemon-reload && systemctl reset-failed {u} 2>/dev/null; "
                f"systemctl start --no-block {u} && for i in $(seq 50); do "
                f'[ "$(systemctl is-active {u})" = inactive ] || break; sleep 0.1; done'),)))
        return changes


def restart_unless_started(unit: str, started: Started,
                           wait: Callable[[], None] | None = None,
                           ) -> Callable[[HostContext], None]:
    """A handler: reload units and restart `unit` (then `wait()`), unless this run just
    started it."""
    def handler(ctx: HostContext) -> None:
        if started.started_now:
            return
        u = shlex.quote(unit)
        done = ctx.session.run(f"systemctl daemon-reload && systemctl restart --no-block {u}")
        if not done.ok:
            raise StepFailed(f"restart {unit}: exit {done.rc}: {done.stderr.strip()[-500:]}")
        if wait is not None:
            wait()
    return handler


class NodesReady(Step):
    """Ensure every node of the cluster is Ready (run on the first server)."""

    verify = False

    def __init__(self, ctx: HostContext, nodes: Mapping[str, str], timeout: float,
                 kubectl: str = "k3s kubectl", failed: Mapping[str, str] | None = None) -> None:
        self.ctx, self.nodes, self.timeout, self.kubectl = ctx, dict(nodes), timeout, kubectl
        self.failed = failed if failed is not None else {}  # node -> error, filled live
        self.name = f"Ensure nodes Ready: {', '.join(self.nodes)}"

    def _give_up_on_failed(self, pending: dict[str, str], skipped: dict[str, str]) -> None:
        """Stop waiting for a node whose own run failed meanwhile: that node is reported on
        its own row, and this host goes on waiting for the others (a failing host never
        stops the others)."""
        for name in [n for n in pending if n in self.failed]:
            del pending[name]
            skipped[name] = self.failed[name].splitlines()[0][:200]

    def facts(self) -> Mapping[str, str]:
        return {"nodes": nodes_fact(self.kubectl).command}

    def _pending(self, result: FactResult) -> dict[str, str]:
        seen = nodes_fact(self.kubectl).parse(result)
        if seen is None:
            return {n: "API not answering" for n in self.nodes}
        return {n: ("NotReady" if n in seen else "not registered")
                for n in self.nodes if not seen.get(n, {}).get("ready")}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        pending = self._pending(facts["nodes"])
        if not pending:
            return []
        if self.ctx.check:
            return [Change(f"would wait up to {self.timeout:.0f} s for Ready: "
                           + ", ".join(f"{n} ({w})" for n, w in pending.items()))]
        started = time.monotonic()
        command = nodes_fact(self.kubectl).command
        skipped: dict[str, str] = {}
        self._give_up_on_failed(pending, skipped)
        while pending and time.monotonic() - started < self.timeout:
            time.sleep(1.0)
            done = self.ctx.session.run(command)
            if done.ok:
                pending = {n: why for n, why in
                           self._pending(FactResult(0, done.stdout)).items()
                           if n not in skipped}
            self._give_up_on_failed(pending, skipped)
        if pending:
            raise StepFailed(self._timeout_message(pending))
        waited = time.monotonic() - started
        if skipped:
            return [Change(f"waited {waited:.0f} s until every node was Ready but "
                           + ", ".join(f"{n} (its own run failed: {why})"
                                       for n, why in skipped.items()), DONE)]
        return [Change(f"waited {waited:.0f} s until every node was Ready", DONE)]

    def _timeout_message(self, pending: Mapping[str, str]) -> str:
        lines = [f"not Ready after {self.timeout:.0f} s: "
                 + ", ".join(f"{n} ({why})" for n, why in pending.items())]
        for name in pending:
            unit = self.nodes[name]
            lines.append(f"last log lines of {unit} on {name}:")
            lines.append(self._logs(name, unit))
        return "\n".join(lines)

    def _logs(self, name: str, unit: str) -> str:
        try:
            session = self.ctx.connector.session(self.ctx.inventory.hosts[name])
            done = session.run(f"journalctl -u {shlex.quote(unit)} -n 8 --no-pager -o cat")
        except Exception as exc:  # noqa: BLE001 - the message is what matters here
            return f"  (cannot read them: {exc})"
        text = secrets.mask(done.stdout.strip() or done.stderr.strip() or "(no log lines)")
        return "\n".join(f"  {line}" for line in text.splitlines())


class SecretFile(Step):
    """Ensure a file holding a secret has `content`, compared by its sha256 (greenroom masks
    registered secrets in everything it reads back, so the content itself cannot be
    compared); written atomically like every file (in a batch, staged with the writes next
    to it: runbooks.core.steps.files.staged_write), its diff never shown."""

    def __init__(self, path: str, content: str, mode: str = "600",
                 notify: tuple[str, ...] = ()) -> None:
        self.path, self.content, self.mode, self.notify = path, content, mode, notify
        self.name = f"Ensure {path}"

    def facts(self) -> Mapping[str, str]:
        p = shlex.quote(self.path)
        return {"file": f"stat -c '%a %U %G' {p} && sha256sum {p}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["file"]
        lines = fact.out.splitlines() if fact.ok else []
        meta = lines[0].split() if lines else []
        digest = lines[1].split()[0] if len(lines) > 1 and lines[1].split() else None
        wanted = hashlib.sha256(self.content.encode()).hexdigest()
        if digest != wanted:
            verb = "create" if digest is None else "update"
            args = (self.path, self.content, self.mode, "root", "root", None)
            # on its own: the content on stdin; in a batch: staged with the other writes
            # next to it (one sync, then the renames), like every file step's write
            script, tmp = staged_write(*args)
            action = Action(write_command(*args), self.content, script, (tmp, self.path))
            return [Change(f"{verb} {self.path}", (action,), SECRET_DIFF)]
        if meta[:3] != [self.mode, "root", "root"]:
            q = shlex.quote(self.path)
            return [Change(f"chmod {self.mode} {self.path} (was {' '.join(meta)})", (Action(
                f"chmod {self.mode} {q} && chown root:root {q}"),))]
        return []


def read_secret(session: Any, path: str) -> str:
    """A secret file's content, read as base64 (so the masking of registered secrets in
    command output cannot hide it from us); "" when missing."""
    done = session.run(f"base64 -w0 {shlex.quote(path)}")
    return decode_secret(done.stdout) if done.ok else ""


def decode_secret(text: str) -> str:
    import base64

    try:
        return base64.b64decode(text.strip()).decode().strip()
    except ValueError:
        return ""
