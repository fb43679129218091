"""`inv k3s` per node: the release files, config, units, and on the first server the token,
the readiness wait and the kubeconfig.

Phases (runbooks.k3s.run): the first server; then the other servers and the agents (given
the first server's token); then, on the first server, every node Ready and the kubeconfig
merged on the operator's machine. A node whose files changed is restarted; nothing else is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.common.artifacts import Artifact, registry_base
from runbooks.common.kube_cluster import AGENT, SERVER, Cluster, vlan_ip
from runbooks.common.kubeconfig_step import KubeconfigMerged
from runbooks.core import secrets
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.session import HostUnreachable
from runbooks.core.steps import Change, Command, File, Handler, Plan, Step, StepFailed
from runbooks.k3s import config as cfg
from runbooks.k3s.distribute import blob_url
from runbooks.k3s.release import (
    Lock,
    ReleaseError,
    binary_name,
    cached_loader,
    images_name,
    lock_path,
    release_lock,
)
from runbooks.k3s.steps import (
    NodesReady,
    SecretFile,
    Started,
    decode_secret,
    read_secret,
    restart_unless_started,
)

if TYPE_CHECKING:
    from runbooks.core.context import HostContext
    from runbooks.core.inventory import Host, Inventory

RESTART = "restart k3s"
TOKEN_WAIT = 90.0


def cluster_of(inventory: Inventory) -> Cluster:
    """The inventory's cluster (validated with the inventory); StepFailed when it has none."""
    cluster = getattr(inventory, "sections", {}).get("cluster")
    if cluster is None:
        raise StepFailed(f"{inventory.path}: no `cluster:` section; add one, e.g. "
                         "cluster: {version: v1.34.1+k3s1}")
    return cluster  # type: ignore[no-any-return]


def registry_endpoint(inventory: Inventory) -> str | None:
    """host:port of the site's registry on the VLAN, or None without a registry (computed
    once, by runbooks.common.registry)."""
    from runbooks.common.registry import registry_endpoint as endpoint_of

    found = endpoint_of(inventory)
    return str(found) if found else None


def release_file(cluster: Cluster, lock: Lock, name: str, path: str, mode: str,
                 base: str | None, notify: tuple[str, ...] = ()) -> Artifact | None:
    """The Artifact step that installs the pinned release file `name` at `path` (None when
    the lock pins no such file for the cluster's version)."""
    digest = lock.digest(cluster.version, name)
    if digest is None:
        return None
    return Artifact(path, cached_loader(cluster.version, name, lock), digest, mode,
                    f"{name} {cluster.version}", notify=notify,
                    mirror=blob_url(base, digest) if base else None)


def binary_fact(inventory: Inventory, host: Host) -> tuple[str, str] | None:
    """(the fact command of the node's k3s binary Artifact step, the pinned sha256): the
    plan's very command, so a batch that has both runs it once (a converged node: its stamp
    read, one `stat`). None when the inventory's lock (read, never fetched) pins no binary
    for the node's architecture."""
    cluster = cluster_of(inventory)
    try:
        lock = Lock.cached(lock_path(inventory.path))
    except ReleaseError:
        return None
    artifact = release_file(cluster, lock, binary_name(cluster.arch[host.name]), cfg.BINARY,
                            "755", registry_base(inventory))
    return (artifact.fact(), artifact.digest) if artifact is not None else None


def node_plan(ctx: HostContext) -> Plan:
    """Release files, config.yaml, registries.yaml, kube-vip, unit and env file, started."""
    inventory, host = ctx.inventory, ctx.host
    cluster = cluster_of(inventory)
    lock: Lock = ctx.options.get("lock") or release_lock(inventory, cluster)
    phased = "shared" in ctx.options  # inv k3s: token and readiness come from other phases
    shared: dict[str, Any] = ctx.options.get("shared", {})
    arch = cluster.arch[host.name]
    first = inventory.hosts[cluster.first_server]
    token = None
    if host.name != cluster.first_server:
        token = shared.get("token") if phased else token_from(ctx, first)
        if token is None:
            if not ctx.check:
                raise StepFailed(f"no join token from {first.name}: it did not come up")
            token = "(the token of " + first.name + ")"
    unit = cfg.unit_name(host)
    notify = (RESTART,)
    plan = Plan()
    base = registry_base(inventory)
    for name, path, mode in ((binary_name(arch), cfg.BINARY, "755"),
                             (images_name(arch, cluster.images),
                              f"{cfg.IMAGES_DIR}/{images_name(arch, cluster.images)}", "644")):
        artifact = release_file(cluster, lock, name, path, mode, base, notify)
        if artifact is None:
            raise StepFailed(f"{lock.path.name} pins no {name} for {cluster.version}: run "
                             "`inv k3s.fetch`")
        plan.add(*artifact.steps())
    plan.add(Command("Ensure kubectl points at k3s", f"ln -sfn k3s {cfg.BINARY[:-3]}kubectl",
                     unless=f'[ "$(readlink {cfg.BINARY[:-3]}kubectl)" = k3s ]'))
    settings = cfg.node_config(host, cluster, inventory, vlan_ip(first))
    plan.add(File(cfg.CONFIG, cfg.config_yaml(settings, inventory), mode="600",
                  notify=notify))
    endpoint = registry_endpoint(inventory)
    if endpoint is not None:
        plan.add(*registry_steps(endpoint, notify))
    vip = cfg.kube_vip(host, cluster, inventory, endpoint or "docker.io") \
        if endpoint else None
    if vip is not None:
        plan.add(File(cfg.KUBE_VIP, vip, mode="600"))
    plan.add(File(f"{cfg.UNIT_DIR}/{unit}.service", cfg.unit_file(host, inventory),
                  notify=notify))
    if token is not None:
        plan.add(SecretFile(cfg.JOIN_TOKEN, token + "\n", notify=notify))
    plan.add(SecretFile(cfg.env_path(host), cfg.env_file(token, inventory), notify=notify))
    started = Started(unit)
    plan.add(started)
    wait = None
    if ctx.options.get("upgrade"):
        wait = lambda: wait_node(ctx, first, cluster.version,  # noqa: E731
                                 float(ctx.options.get("timeout", 180)))
    plan.handler(Handler(RESTART, restart_unless_started(unit, started, wait)))
    if host.name == cluster.first_server:
        plan.add(JoinToken(ctx, shared))
        if not phased:  # one pass (demo.rehearse): the others converge meanwhile
            plan.steps.extend(ready_plan(ctx).steps)
    return plan


def rollout_order(cluster: Cluster, names: list[str]) -> list[str]:
    """The order an upgrade restarts the chosen nodes in, one at a time: the first server,
    the other servers (inventory order), then the agents."""
    chosen = set(names)
    return [n for n in (cluster.first_server, *cluster.servers[1:], *cluster.agents)
            if n in chosen]


def wait_node(ctx: HostContext, first: Host, version: str, timeout: float) -> None:
    """After a restart during an upgrade: wait until this node is Ready on `version`."""
    from runbooks.common.kubectl import node_status

    session = ctx.connector.session(first)
    deadline = time.monotonic() + timeout
    command = f"k3s kubectl get node {ctx.host.name} -o json"
    time.sleep(1.0)
    last = "not registered"
    while time.monotonic() < deadline:
        done = session.run(command)
        if done.ok:
            import json

            status = node_status(json.loads(done.stdout))
            if status["ready"] and status["version"] == version:
                return
            last = f"{'Ready' if status['ready'] else 'NotReady'} on {status['version']}"
        time.sleep(1.0)
    raise StepFailed(f"{ctx.host.name} is not Ready on {version} {timeout:.0f} s after its "
                     f"restart ({last}); the upgrade stops here: see `journalctl -u "
                     f"{cfg.unit_name(ctx.host)}` on it")


class ReadyOnVersion(Step):
    """Ensure this node is Ready on the pinned version (an upgrade's first server, before the
    rollout goes on to the next node)."""

    verify = False

    def __init__(self, ctx: HostContext, version: str, timeout: float) -> None:
        self.ctx, self.version, self.timeout = ctx, version, timeout
        self.name = f"Ensure {ctx.host.name} is Ready on {version} before the next node"

    def facts(self) -> Mapping[str, str]:
        return {}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not self.ctx.check:
            wait_node(self.ctx, self.ctx.host, self.version, self.timeout)
        return []


def first_ready_plan(ctx: HostContext) -> Plan:
    """An upgrade's second phase, on the first server: Ready on the new version."""
    plan = Plan()
    plan.add(ReadyOnVersion(ctx, cluster_of(ctx.inventory).version,
                            float(ctx.options.get("timeout", 180))))
    return plan


@dataclass
class _TokenRead:
    """One run's read of the join token: done under `lock` by whichever host needs it
    first; the others wait for it and take the token it found."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    token: str | None = None


def _token_read(connector: Any) -> _TokenRead:
    """The run's token read: kept in the run's Connector (`run_values`; reached through a
    wrapper of it too, such as demo.check's), so every host of the run shares it."""
    with connector.run_values_lock:
        read = connector.run_values.get("k3s join token")
        if read is None:
            read = connector.run_values["k3s join token"] = _TokenRead()
        return read


def token_from(ctx: HostContext, first: Host) -> str | None:
    """The first server's join token, read once per run (the run's Connector) over the first
    server's session, waiting while it starts, and shared by every host of the run; None in
    check mode when it has none yet. Registered as a secret as soon as it is read. A read
    that found nothing in a real run (the server did not come up in time) or could not
    connect is not shared: the next host that asks waits on its own, as it always did."""
    read = _token_read(ctx.connector)
    with read.lock:
        if not read.done:
            token = _read_token(ctx, first)
            if token is not None or ctx.check:
                read.token, read.done = token, True
            return token
        return read.token


def _shared_token(ctx: HostContext) -> tuple[bool, str | None]:
    """(whether the run read the token already, what it found), without waiting for a read
    under way (an agent may be waiting for this very host to start k3s)."""
    read = _token_read(ctx.connector)
    return read.done, read.token


def _share_token(ctx: HostContext, token: str) -> None:
    """A token the first server read in its own facts: the run's read, for the others (a
    read under way meanwhile finds the same token and shares it itself)."""
    read = _token_read(ctx.connector)
    if read.lock.acquire(blocking=False):
        try:
            if not read.done:
                read.token, read.done = token, True
        finally:
            read.lock.release()


def _read_token(ctx: HostContext, first: Host) -> str | None:
    """Read the token over the first server's session (waiting while it starts)."""
    deadline = time.monotonic() + TOKEN_WAIT
    session = None
    while session is None:
        try:  # the first server's own run may be opening this very connection right now
            session = ctx.connector.session(first)
        except HostUnreachable:
            if ctx.check or time.monotonic() > deadline:  # check mode waits for nothing
                raise
            time.sleep(0.5)
    while True:
        token = read_secret(session, cfg.TOKEN)
        if token:
            secrets.register(token)
            secrets.register(token.rpartition(":")[2])
            return token
        if ctx.check or time.monotonic() > deadline:
            return None
        time.sleep(1.0)


def registry_steps(endpoint: str, notify: tuple[str, ...]) -> list[Step]:
    """registries.yaml through the common registry-trust step (the one writer of that file,
    the same step `registry.trust` runs)."""
    from runbooks.common.registry_trust import k3s_registries_step

    return [k3s_registries_step(endpoint, notify)]


class JoinToken(Step):
    """Read the first server's join token (waiting for a server that is starting); it is
    registered as a secret at once and handed to the other nodes in memory only.

    The token comes with this host's facts (no round trip of its own) and is the run's read:
    phased (`inv k3s`), the other nodes get it from `shared`; in one pass (the other nodes
    converging meanwhile), from the run's read (`token_from`). When another host of the run
    read it already, the facts do not ask for it again."""

    verify = False

    def __init__(self, ctx: HostContext, shared: dict[str, Any]) -> None:
        self.ctx, self.shared = ctx, shared
        self.name = "Read the join token"

    def facts(self) -> Mapping[str, str]:
        if _shared_token(self.ctx)[0]:
            return {}
        return {"token": f"base64 -w0 {cfg.TOKEN}"}  # base64: never masked on the way

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if "token" in facts:
            token = decode_secret(facts["token"].out) if facts["token"].ok else ""
        else:
            token = _shared_token(self.ctx)[1] or ""
        deadline = time.monotonic() + TOKEN_WAIT
        while not token and not self.ctx.check and time.monotonic() < deadline:
            time.sleep(1.0)
            token = read_secret(self.ctx.session, cfg.TOKEN)
        if token:
            secrets.register(token)
            secrets.register(token.rpartition(":")[2])
            self.shared["token"] = token
            _share_token(self.ctx, token)
            return []
        if self.ctx.check:
            return []
        logs = self.ctx.session.run("journalctl -u k3s -n 8 --no-pager -o cat").stdout
        raise StepFailed(f"{cfg.TOKEN} did not appear within {TOKEN_WAIT:.0f} s: k3s did not "
                         f"start. Last log lines:\n{secrets.mask(logs.strip())}")


def ready_plan(ctx: HostContext) -> Plan:
    """On the first server: every node Ready, then the kubeconfig merged locally."""
    cluster = cluster_of(ctx.inventory)
    # a node that failed or was lost in this run is reported on its own row: not waited for
    so_far = ctx.options.get("run_so_far")
    lost = {name for name, r in getattr(so_far, "hosts", {}).items() if not r.status.good}
    nodes = {n: cfg.unit_name(ctx.inventory.hosts[n]) for n in cluster.nodes if n not in lost}
    plan = Plan()
    failed = ctx.options.get("shared", {}).get("failed")
    plan.add(NodesReady(ctx, nodes, float(ctx.options.get("timeout", 180)), failed=failed))
    if lost:
        ctx.log(f"not waiting for {', '.join(sorted(lost))}: failed earlier in this run")
    path = ctx.options.get("kubeconfig_path", "default")
    if path == "default":
        from runbooks.common.kubeconfig import kubeconfig_path

        path = kubeconfig_path(None)
    if path is not None:
        plan.add(KubeconfigMerged(ctx, ctx.inventory.site,
                                  f"https://{cluster.api_address}:6443", path,
                                  read=f"cat {cfg.KUBECONFIG}", what="k3s"))
    return plan


def together_plan(ctx: HostContext) -> Plan:
    """`inv k3s`'s second phase: the other nodes converge while the first server waits for
    every node Ready (one round instead of two; a node whose own run fails is not waited for)."""
    if ctx.host.name == cluster_of(ctx.inventory).first_server:
        return ready_plan(ctx)
    return node_plan(ctx)


def whole_plan(ctx: HostContext) -> Plan:
    """Everything `inv k3s` wants on one host in one pass: the release files in the registry
    (on the registry host), the node's own plan (the token read over the first server's
    session), and on the first server the readiness and the kubeconfig. `inv k3s` reads it
    in check mode first, every host at once: a converged cluster is then done in one round."""
    from runbooks.k3s.distribute import gateway_plan

    plan = Plan()
    registry = getattr(ctx.inventory, "registry", None)
    if registry is not None and registry.host == ctx.host.name:
        plan = gateway_plan(ctx)
    if ctx.host.name in cluster_of(ctx.inventory).nodes:
        node = node_plan(ctx)
        plan.add(*node.steps)
        plan.handler(*node.handlers)
    return plan


NODES = Runbook("k3s", (SERVER, AGENT), node_plan)
READY = Runbook("k3s.ready", (SERVER,), ready_plan)
FIRST_READY = Runbook("k3s.upgrade", (SERVER,), first_ready_plan)
TOGETHER = Runbook("k3s", (SERVER, AGENT), together_plan)
WHOLE = Runbook("k3s", (SERVER, AGENT), whole_plan)
RUNBOOK = NODES  # demo.rehearse: one pass (agents read the token over the server's session)

