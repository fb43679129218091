"""`inv microk8s` per node, in one pass (nodes in parallel):

launch configuration (before the install, or `snap set` on an installed snap) -> snap
installed -> held against refreshes -> the login user in group `microk8s`, owning ~/.kube ->
`status --wait-ready` -> (joining nodes) joined through a fresh single-use token from the seed
node, a half-joined node first removed on the seed side -> (seed) addons enabled when not
enabled, the kubeconfig merged on this machine with the site's context name.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.common.facts import succeeded
from runbooks.common.kubeconfig import kubeconfig_path
from runbooks.common.kubeconfig_step import KubeconfigMerged
from runbooks.common.microk8s_cluster import ROLE, Microk8sCluster
from runbooks.core import secrets
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.session import HostUnreachable
from runbooks.core.steps import Action, Change, Command, File, Plan, Step, StepFailed, Verify
from runbooks.microk8s import config as cfg
from runbooks.microk8s.board import board_steps

if TYPE_CHECKING:
    from runbooks.core.context import HostContext
    from runbooks.core.inventory import Inventory

DONE = (Action(":"),)  # a change made while planning (on the seed, or on this machine)
CLUSTERED = "/var/snap/microk8s/current/var/lock/clustered.lock"
# this node has joined a cluster (microk8s's own marker, removed by `microk8s leave`)
CLUSTERED_HERE: Fact[bool] = Fact("microk8s clustered", f"test -e {CLUSTERED}", succeeded)
JOIN_PORT = 25000
JOIN_TIMEOUT = 900
TOKENS = "/var/snap/microk8s/current/credentials/cluster-tokens.txt"
# On the seed: the token read from stdin (TOKEN/CHECK) removed from the cluster's token file
# if a failed join left it there; shell builtins only, so it is in no process's argv.
REVOKE = f"""f={TOKENS}; n=$f.greenroom; found=
IFS= read -r t; t=${{t%%/*}}
[ -n "$t" ] && [ -f "$f" ] || exit 0
(umask 077; : > "$n")
while IFS= read -r l || [ -n "$l" ]; do
  case "$l" in "$t"|"$t|"*) found=1 ;; *) printf '%s\\n' "$l" >> "$n" ;; esac
done < "$f"
if [ -n "$found" ]; then mv "$n" "$f"; echo revoked; else rm -f "$n"; fi
"""
SEED_WAIT = 180.0
INSPECT_KEEP = ("FAIL", "fail", "error", "Error", "WARN", "Inspection report", "tarball")


def cluster_of(inventory: Inventory) -> Microk8sCluster:
    """The inventory's microk8s cluster; StepFailed when it describes none."""
    cluster = getattr(inventory, "sections", {}).get("cluster")
    if not isinstance(cluster, Microk8sCluster):
        raise StepFailed(f"{inventory.path}: `cluster:` does not say distribution: microk8s "
                         "(with a channel); add it, e.g. cluster: {distribution: microk8s, "
                         "channel: 1.32/stable}")
    return cluster


def registry_of(inventory: Inventory) -> str | None:
    from runbooks.common.registry import registry_endpoint

    found = registry_endpoint(inventory)
    return str(found) if found else None


def login_user(ctx: HostContext) -> str:
    return ctx.host.user or "root"


def inspect_lines(session: Any) -> str:
    """The lines of `microk8s inspect` that matter (failures, warnings, the tarball)."""
    done = session.run("microk8s inspect 2>&1", timeout=300)
    lines = [ln for ln in done.stdout.splitlines() if any(k in ln for k in INSPECT_KEEP)]
    return secrets.mask("\n".join(lines[-12:]) or done.stdout.strip()[-800:])


def node_plan(ctx: HostContext) -> Plan:
    """The steps for one node (the seed node does addons and the kubeconfig too)."""
    cluster = cluster_of(ctx.inventory)
    user = shlex.quote(login_user(ctx))
    q = shlex.quote
    timeout = int(ctx.options.get("timeout", 120))
    plan = Plan()
    plan.add(*board_steps(ctx, cluster))
    plan.add(File(cfg.CONFIG, cfg.launch_yaml(cluster, registry_of(ctx.inventory)),
                  mode="644"))
    install, source = cfg.install_command(cluster), cluster.channel
    if cluster.offline:
        from runbooks.microk8s import offline

        pinned, files = offline.node_steps(ctx, cluster)
        plan.add(*files)
        install = offline.install_command(pinned.revision, cfg.stamp_command())
        source = f"{cluster.channel} revision {pinned.revision}, pinned"
    plan.add(Command(f"Install the microk8s snap ({source})", install,
                     unless="snap list microk8s >/dev/null 2>&1"))
    plan.add(Command("Apply the launch configuration to the installed snap",
                     f'set -e; snap set microk8s config="$(cat {cfg.CONFIG})"; '
                     f"sha256sum < {cfg.CONFIG} > {cfg.STAMP}",
                     unless=f'[ "$(sha256sum < {cfg.CONFIG})" = "$(cat {cfg.STAMP} '
                            '2>/dev/null)" ]'))
    plan.add(Command("Hold microk8s against snap refreshes", "snap refresh --hold microk8s",
                     unless="snap list microk8s | awk 'NR==2 {print $NF}' | grep -q held"))
    plan.add(Command(f"Ensure {login_user(ctx)} is in group microk8s",
                     f"usermod -a -G microk8s {user}",
                     unless=f"id -nG {user} | tr ' ' '\\n' | grep -qx microk8s"))
    home = f"$(getent passwd {user} | cut -d: -f6)/.kube"
    plan.add(Command(f"Ensure ~{login_user(ctx)}/.kube is owned by {login_user(ctx)}",
                     f'mkdir -p "{home}" && chown -R {user} "{home}"',
                     unless=f'[ -d "{home}" ] && [ -z "$(find "{home}" ! -user {user})" ]'))
    plan.add(Ready(ctx, timeout))
    if ctx.host.name == cluster.seed:
        plan.add(Addons(cluster))
        if cluster.ingress_service:
            from runbooks.microk8s.ingress import IngressService

            plan.add(IngressService(cluster.ingress_address))
        path = ctx.options.get("kubeconfig_path", "default")
        if path == "default":
            path = kubeconfig_path(None)
        if path is not None:
            plan.add(KubeconfigMerged(ctx, ctx.inventory.site,
                                      f"https://{cluster.api_address}:{cfg.API_PORT}",
                                      Path(path), read="microk8s config", what="microk8s"))
    else:
        plan.add(Joined(ctx, cluster, q(ctx.host.name)))
    return plan


def ready_fact(timeout: int) -> Fact[bool]:
    """microk8s is installed and ready within `timeout` seconds."""
    return Fact(f"microk8s ready within {timeout} s",
                "command -v microk8s >/dev/null && microk8s status --wait-ready "
                f"--timeout {timeout} >/dev/null", succeeded)


class Ready(Verify):
    """`microk8s status --wait-ready` within a timeout; on failure `microk8s inspect`'s lines."""

    def __init__(self, ctx: HostContext, timeout: int) -> None:
        self.ctx, self.timeout = ctx, timeout
        self.name = f"microk8s ready (status --wait-ready, {timeout} s at most)"

    def facts(self) -> Mapping[str, str]:
        return {"ready": ready_fact(self.timeout).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if ready_fact(self.timeout).read(facts, "ready") or self.ctx.check:
            return []
        raise StepFailed(f"microk8s is not ready after {self.timeout} s; `microk8s inspect` "
                         f"says:\n{inspect_lines(self.ctx.session)}")


def parse_addons(text: str) -> dict[str, bool]:
    """`microk8s status --format short` -> {addon name: enabled}."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        name, sep, state = line.partition(":")
        if sep and state.strip() in ("enabled", "disabled"):
            out[name.strip().rpartition("/")[2]] = state.strip() == "enabled"
    return out


# {addon: enabled} of `microk8s status --format short`; {} when microk8s does not answer
ADDONS: Fact[dict[str, bool]] = Fact(
    "microk8s addons", "microk8s status --format short",
    lambda result: parse_addons(result.out) if result.ok else {})


class Addons(Step):
    """Every addon of the inventory enabled (`microk8s enable` only for those that are not)."""

    def __init__(self, cluster: Microk8sCluster) -> None:
        self.cluster = cluster
        self.name = "Ensure addons enabled: " + (", ".join(a.name for a in cluster.addons)
                                                 or "(none)")

    def facts(self) -> Mapping[str, str]:
        return {"status": ADDONS.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not self.cluster.addons:
            return []
        known = ADDONS.read(facts, "status")
        changes = []
        for addon in self.cluster.addons:
            if known.get(addon.name):
                continue
            command = " ".join(shlex.quote(p) for p in ("microk8s", "enable", addon.name,
                                                         *addon.args))
            changes.append(Change(f"enable addon {addon.name}", (Action(command),)))
        return changes


class Joined(Step):
    """This node a member of the seed's cluster: joined with a fresh single-use token from
    `microk8s add-node` on the seed (read over the seed's session, registered as a secret,
    handed to `microk8s join` on stdin); a node the seed knows but that is not joined (a
    failed join) is first removed on the seed side; one joined but unknown to the seed
    leaves first."""

    verify = True

    def __init__(self, ctx: HostContext, cluster: Microk8sCluster, node: str) -> None:
        self.ctx, self.cluster, self.node = ctx, cluster, node
        worker = ctx.host.name in cluster.workers
        self.worker = worker
        self.name = (f"Ensure {ctx.host.name} joined {cluster.seed}"
                     f"{' as a worker' if worker else ''}")

    def facts(self) -> Mapping[str, str]:
        return {"here": CLUSTERED_HERE.command}

    def _seed(self) -> Any:
        seed = self.ctx.inventory.hosts[self.cluster.seed]
        deadline = time.monotonic() + SEED_WAIT
        while True:
            try:
                session = self.ctx.connector.session(seed)
                break
            except HostUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return session

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        here = CLUSTERED_HERE.read(facts, "here")
        seed = self._seed()
        deadline = time.monotonic() + (0 if self.ctx.check else SEED_WAIT)
        while True:  # the seed's own run may still be installing it
            wait = seed.run("command -v microk8s >/dev/null && microk8s status --wait-ready "
                            "--timeout 10 >/dev/null", timeout=60)
            if wait.ok or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if not wait.ok:
            if self.ctx.check:
                return [Change(f"join {self.cluster.seed} once it runs microk8s")]
            raise StepFailed(f"the seed node {self.cluster.seed} is not ready; see its own "
                             "result")
        known = seed.run(f"microk8s kubectl get node {self.node} -o name").ok
        if here and known:
            return []
        changes: list[Change] = []
        if known:  # half-joined: the seed lists it, the node is not part of the cluster
            if not self.ctx.check:
                gone = seed.run(f"microk8s remove-node {self.node} --force")
                if not gone.ok:
                    raise StepFailed(f"could not remove the half-joined {self.node} on "
                                     f"{self.cluster.seed}: {secrets.mask(gone.stderr)}")
            changes.append(Change(f"remove the half-joined {self.ctx.host.name} on "
                                  f"{self.cluster.seed}", () if self.ctx.check else DONE))
        leave = "microk8s leave; " if here else ""
        if self.ctx.check:
            return changes + [Change(f"{leave}join {self.cluster.seed} with a fresh token",
                                     (Action("(token from the seed)"),))]
        with _join_lock(self.cluster.seed):  # one join at a time: one dqlite change each
            self._join(seed, leave)
        return changes + [Change(f"{leave}join {self.cluster.seed} with a fresh single-use "
                                 f"token ({'worker' if self.worker else 'control plane'})",
                                 DONE)]

    def _join(self, seed: Any, leave: str) -> None:
        """Issue a single-use token on the seed, join with it, revoke it if still unused.

        The token reaches the node on stdin (never in a command line we send). The real
        `microk8s join` takes it only as its argument, so it is in that process's argv on
        the joining node while the join runs; single-use (no --token-ttl: a token with a
        TTL can be reused until it expires), it is worthless once the seed accepted it,
        and revoked on the seed when the join failed before using it.
        """
        issued = seed.run("microk8s add-node --format json")
        try:
            token = str(json.loads(issued.stdout)["token"]) if issued.ok else ""
        except (ValueError, KeyError, TypeError):
            token = ""
        secrets.register(token)
        secrets.register(token.partition("/")[0])
        if not token.partition("/")[0]:
            raise StepFailed(f"`microk8s add-node` on {self.cluster.seed} gave no token: "
                             f"{secrets.mask((issued.stderr or issued.stdout).strip())}")
        address = self.cluster.addresses[self.cluster.seed]
        command = (f'set -e; {leave}IFS= read -r t; microk8s join "{address}:{JOIN_PORT}/$t"'
                   f"{' --worker' if self.worker else ''}")
        try:
            done = self.ctx.session.run(command, stdin=token + "\n", timeout=JOIN_TIMEOUT)
        finally:
            revoke = seed.run(REVOKE, stdin=token + "\n")
        if not done.ok:
            said = secrets.mask((done.stderr.strip() or done.stdout.strip())[-600:])
            raise StepFailed(f"`microk8s join` to {self.cluster.seed} failed: {said}\n"
                             f"`microk8s inspect` on {self.ctx.host.name} says:\n"
                             f"{inspect_lines(self.ctx.session)}")
        if not revoke.ok:
            raise StepFailed(f"could not check that the join token is gone on "
                             f"{self.cluster.seed}: {secrets.mask(revoke.stderr.strip())}")


_JOIN_LOCKS: dict[str, threading.Lock] = {}
_JOIN_LOCKS_GUARD = threading.Lock()


def _join_lock(seed: str) -> threading.Lock:
    with _JOIN_LOCKS_GUARD:
        return _JOIN_LOCKS.setdefault(seed, threading.Lock())


def reset_plan(ctx: HostContext) -> Plan:
    """The snap removed with its data, the launch configuration and stamp gone."""
    plan = Plan()
    plan.add(Command("Remove the microk8s snap and its data", "snap remove --purge microk8s",
                     only_if="snap list microk8s >/dev/null 2>&1"))
    for path in (cfg.CONFIG, cfg.STAMP):
        plan.add(Command(f"Remove {path}", f"rm -f {path}", only_if=f"test -e {path}"))
    return plan


RUNBOOK = Runbook("microk8s", (ROLE,), node_plan)
RESET = Runbook("microk8s.reset", (ROLE,), reset_plan)


def parse_snap_notes(result: FactResult) -> str | None:
    """The Notes column of `snap list microk8s`'s row ("held", "-", ...); None: no snap."""
    notes = result.out.strip() if result.ok else ""
    return notes or None


# the microk8s snap's notes (None when it is not installed)
SNAP_NOTES: Fact[str | None] = Fact(
    "microk8s snap notes", "snap list microk8s | awk 'NR==2 {print $NF}'", parse_snap_notes)


class Held(Verify):
    """The snap installed and held against refreshes."""

    name = "microk8s snap installed and held"

    def facts(self) -> Mapping[str, str]:
        return {"notes": SNAP_NOTES.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        notes = SNAP_NOTES.read(facts, "notes")
        if notes is None:
            raise StepFailed("microk8s is not installed: run `inv microk8s`")
        if "held" not in notes:
            raise StepFailed("the microk8s snap is not held: a snap refresh may restart it "
                             "mid-demo; run `inv microk8s` (it holds it)")
        return []


def parse_node_list(result: FactResult) -> dict[str, str]:
    """`kubectl get nodes --no-headers` -> {node: STATUS column}; {} when it fails."""
    if not result.ok:
        return {}
    return {line.split()[0]: line.split()[1] for line in result.out.splitlines()
            if len(line.split()) > 1}


# {node: status} as the seed's kubectl lists them
NODES: Fact[dict[str, str]] = Fact("microk8s nodes", "microk8s kubectl get nodes --no-headers",
                                   parse_node_list)


class NodesReady(Verify):
    """On the seed node: every node of the inventory listed and Ready."""

    def __init__(self, cluster: Microk8sCluster) -> None:
        self.cluster = cluster
        self.name = f"nodes Ready: {', '.join(cluster.nodes)}"

    def facts(self) -> Mapping[str, str]:
        return {"nodes": NODES.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        status = NODES.read(facts, "nodes")
        bad = [f"{n} ({status.get(n, 'missing')})" for n in self.cluster.nodes
               if status.get(n) != "Ready"]
        if bad:
            raise StepFailed(f"not Ready: {', '.join(bad)}; run `inv microk8s` (it joins "
                             "missing nodes)")
        return []


def parse_ha(text: str) -> str | None:
    """`high-availability: yes|no` of `microk8s status` (None when it does not say)."""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "high-availability":
            return value.strip()
    return None


# `high-availability:` of `microk8s status` ("yes", "no"; None when it does not say)
HIGH_AVAILABILITY: Fact[str | None] = Fact(
    "microk8s high-availability", "microk8s status",
    lambda result: parse_ha(result.out) if result.ok else None)


def ha_expected(cluster: Microk8sCluster) -> bool:
    """dqlite is highly available with three control-plane nodes or more."""
    return len(cluster.nodes) - len(cluster.workers) >= 3


class HighAvailability(Verify):
    """On the seed node: `high-availability: yes` when the inventory has three control-plane
    nodes or more (fewer: `no` is what microk8s says, and fine)."""

    def __init__(self, cluster: Microk8sCluster, log: Any) -> None:
        self.cluster, self.log = cluster, log
        voters = len(cluster.nodes) - len(cluster.workers)
        self.name = (f"high availability ({voters} control-plane node"
                     f"{'s' if voters != 1 else ''}: {'yes' if ha_expected(cluster) else 'no'}"
                     " expected)")

    def facts(self) -> Mapping[str, str]:
        return {"status": HIGH_AVAILABILITY.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        said = HIGH_AVAILABILITY.read(facts, "status")
        self.log(f"high-availability: {said or 'unknown'}")
        if ha_expected(self.cluster) and said != "yes":
            raise StepFailed(f"high-availability is {said or 'unknown'} with "
                             f"{len(self.cluster.nodes) - len(self.cluster.workers)} "
                             "control-plane nodes: a node may be joining or gone; run "
                             "`inv microk8s` and see `microk8s status` on the seed")
        return []


class AddonsEnabled(Verify):
    """On the seed node: every addon of the inventory enabled."""

    def __init__(self, cluster: Microk8sCluster) -> None:
        self.cluster = cluster
        self.name = "addons enabled: " + (", ".join(a.name for a in cluster.addons) or "(none)")

    def facts(self) -> Mapping[str, str]:
        return {"status": ADDONS.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        known = ADDONS.read(facts, "status")
        off = [a.name for a in self.cluster.addons if not known.get(a.name)]
        if off:
            raise StepFailed(f"addons not enabled: {', '.join(off)}; run `inv microk8s`")
        return []


def check_plan(ctx: HostContext) -> Plan:
    """Read-only: held snap and readiness on every node; nodes and addons on the seed."""
    cluster = cluster_of(ctx.inventory)
    plan = Plan().add(Held(), Ready(ctx, int(ctx.options.get("timeout", 30))))
    if ctx.host.name == cluster.seed:
        plan.add(NodesReady(cluster), AddonsEnabled(cluster),
                 HighAvailability(cluster, ctx.log))
    return plan


CHECK = Runbook("microk8s.check", (ROLE,), check_plan)
