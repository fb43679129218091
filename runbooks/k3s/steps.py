"""Steps of the k3s runbook that the engine's generic ones do not cover.

- `Artifact`: a release file on the node with the pinned sha256 (checked on the node, before
  the file replaces anything), pushed over the host's SSH session (so through `via` jumps).
- `Started`: the unit enabled and started without blocking (a k3s agent that cannot join
  stays "activating" for ever; the readiness wait reports it, with its log lines).
- `NodesReady`: on the first server, every node of the inventory Ready, waited for with a
  timeout; a node that does not get there is named with its last log lines.
- `KubeconfigMerged`: the cluster's kubeconfig, renamed to the site, merged on the operator's
  machine (runbooks.common.kubeconfig).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.common.kubeconfig import (
    KubeconfigError,
    merge_kubeconfig,
    names_in,
    read_kubeconfig,
    site_kubeconfig,
    write_kubeconfig,
)
from runbooks.common.kubectl import node_status
from runbooks.core import secrets
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed
from runbooks.core.steps.files import SECRET_DIFF, write_command
from runbooks.core.steps.system import unit_active, unit_enabled

if TYPE_CHECKING:
    from runbooks.core.context import HostContext


# A change already made while planning (a wait, a local file): an action that does nothing,
# so the engine does not take it for a precondition left to the user.
DONE = (Action(":"),)


def upload_command(path: str, digest: str, mode: str) -> str:
    """Remote sh: stdin -> a temp file beside `path`, sha256 checked, then renamed over it."""
    q = shlex.quote
    folder = path.rsplit("/", 1)[0] or "/"
    return ("set -e\n"
            f"mkdir -p {q(folder)}\n"
            f"tmp=$(mktemp {q(path)}.greenroom.XXXXXX)\n"
            "trap 'rm -f \"$tmp\"' EXIT\n"
            'cat > "$tmp"\n'
            f'if ! echo "{digest}  $tmp" | sha256sum -c --status -; then echo "sha256 of '
            f'{path} on the node is $(sha256sum "$tmp" | cut -c1-64), expected {digest}; '
            'nothing was replaced" >&2; exit 4; fi\n'
            f'chmod {q(mode)} "$tmp"\n'
            f'mv -f "$tmp" {q(path)}\n'
            "trap - EXIT\n")


def download_command(path: str, url: str, digest: str, mode: str) -> str:
    """Remote sh: `url` (the gateway's registry, on the LAN) -> a temp file beside `path`,
    sha256 checked on the node, then renamed over it."""
    fetch = f"curl -sSf --connect-timeout 5 -o \"$tmp\" {shlex.quote(url)}\n"
    return upload_command(path, digest, mode).replace('cat > "$tmp"\n', fetch, 1)


FROM_GATEWAY = "greenroom: the gateway has it"


class Artifact(Step):
    """Ensure `path` on the node has sha256 `digest`: else downloaded from `mirror` (the
    gateway's registry) when the node reaches it there, else `local` pushed over SSH."""

    def __init__(self, path: str, local: Callable[[], Path], digest: str, mode: str = "755",
                 label: str = "", notify: tuple[str, ...] = (),
                 mirror: str | None = None) -> None:
        self.path, self.local, self.digest, self.mode = path, local, digest, mode
        self.name = f"Ensure {path} is {label or 'the pinned file'} (sha256 {digest[:12]})"
        self.notify, self.mirror = notify, mirror

    def facts(self) -> Mapping[str, str]:
        command = f"sha256sum {shlex.quote(self.path)}"
        if self.mirror is None:
            return {"sum": command}
        # only a node without the file asks the gateway (a converged node pays nothing)
        return {"sum": f"{command} 2>/dev/null | grep -q '^{self.digest} ' && echo "
                       f"'{self.digest}' || {{ {command} 2>/dev/null; command -v curl "
                       f">/dev/null && curl -sfI --connect-timeout 3 -m 15 -o /dev/null "
                       f"{shlex.quote(self.mirror)} && "
                       f"echo '{FROM_GATEWAY}'; true; }}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["sum"]
        lines = fact.out.splitlines() if fact.ok else []
        current = lines[0].split()[0] if lines and lines[0].split() \
            and lines[0] != FROM_GATEWAY else None
        if current == self.digest:
            return []
        verb = "replace" if current else "install"
        if self.mirror is not None and FROM_GATEWAY in lines:
            where = self.mirror.split("/v2/", 1)[0]
            return [Change(f"{verb} {self.path} from the gateway's registry {where} (sha256 "
                           f"{self.digest[:12]}, checked on the node)",
                           (Action(download_command(self.path, self.mirror, self.digest,
                                                    self.mode)),))]
        data = self.local().read_bytes()  # only when it must travel
        return [Change(f"{verb} {self.path} ({len(data)} bytes, sha256 {self.digest[:12]})",
                       (Action(upload_command(self.path, self.digest, self.mode),
                               data),))]  # type: ignore[arg-type]  # bytes travel as is


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

    def _given_up(self, pending: Mapping[str, str]) -> None:
        """Stop waiting for a node whose own run failed meanwhile (it is reported there)."""
        gone = [n for n in pending if n in self.failed]
        if gone:
            raise StepFailed("not Ready: " + ", ".join(
                f"{n} (its run failed: {self.failed[n].splitlines()[0][:200]})" for n in gone))

    def facts(self) -> Mapping[str, str]:
        return {"nodes": f"{self.kubectl} get nodes -o json"}

    def _pending(self, out: str) -> dict[str, str]:
        try:
            items = json.loads(out).get("items", [])
        except ValueError:
            items = []
        seen = {s["name"]: s for s in (node_status(n) for n in items)}
        return {n: ("NotReady" if n in seen else "not registered")
                for n in self.nodes if not seen.get(n, {}).get("ready")}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["nodes"]
        pending = self._pending(fact.out) if fact.ok else {n: "API not answering"
                                                          for n in self.nodes}
        if not pending:
            return []
        if self.ctx.check:
            return [Change(f"would wait up to {self.timeout:.0f} s for Ready: "
                           + ", ".join(f"{n} ({w})" for n, w in pending.items()))]
        started = time.monotonic()
        command = f"{self.kubectl} get nodes -o json"
        while pending and time.monotonic() - started < self.timeout:
            self._given_up(pending)
            time.sleep(1.0)
            done = self.ctx.session.run(command)
            if done.ok:
                pending = self._pending(done.stdout)
        if pending:
            raise StepFailed(self._timeout_message(pending))
        waited = time.monotonic() - started
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


class KubeconfigMerged(Step):
    """Ensure the operator's kubeconfig has the cluster as context `name` (merged locally)."""

    verify = False

    def __init__(self, ctx: HostContext, name: str, server: str, path: Path,
                 source: str) -> None:
        self.ctx, self.site, self.server, self.path, self.source = ctx, name, server, path, source
        self.name = f"Ensure context {name} in {path} (server {server})"

    def facts(self) -> Mapping[str, str]:
        return {"k3s": f"cat {shlex.quote(self.source)}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["k3s"]
        if not fact.ok:
            if self.ctx.check:
                return [Change(f"would merge context {self.site} into {self.path} once the "
                               "server has written its kubeconfig")]
            raise StepFailed(f"{self.source} is missing on the server: is k3s running?")
        try:
            site = site_kubeconfig(fact.out, self.site, self.server)
            current = read_kubeconfig(self.path)
            merged = merge_kubeconfig(current, site)
        except KubeconfigError as exc:
            raise StepFailed(f"{self.path}: {exc}") from None
        if merged is current:
            return []
        had = names_in(current)["contexts"] if current is not None else []
        verb = "update" if self.site in had else "add"
        if not self.ctx.check:
            write_kubeconfig(self.path, merged)
        return [Change(f"{verb} cluster, user and context {self.site} in {self.path} "
                       "(other contexts kept)", () if self.ctx.check else DONE)]


class SecretFile(Step):
    """Ensure a file holding a secret has `content`, compared by its sha256 (greenroom masks
    registered secrets in everything it reads back, so the content itself cannot be
    compared); written atomically like every file, its diff never shown."""

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
            command = write_command(self.path, self.content, self.mode, "root", "root", None)
            return [Change(f"{verb} {self.path}", (Action(command, self.content),),
                           SECRET_DIFF)]
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
