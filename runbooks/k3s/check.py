"""`inv k3s.check`: read-only health of the cluster; changes nothing, exits 1 when unhealthy.

On every node: the pinned version runs, its unit is active, the registry mirror is in use
(k3s rendered hosts.toml for the site's registry). On the first server: every node Ready,
every system pod Running, the disabled components really absent.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runbooks.common.kube_cluster import AGENT, SERVER
from runbooks.common.kubectl import ON_NODE
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Health, Plan
from runbooks.core.steps.system import unit_active
from runbooks.k3s import config as cfg
from runbooks.k3s.plan import cluster_of, registry_endpoint

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

CERTS = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"
# what `disable: [X]` removes from kube-system
COMPONENTS = {"traefik": ("deployment.apps/traefik",), "servicelb": ("daemonset.apps/svclb-",),
              "metrics-server": ("deployment.apps/metrics-server",),
              "local-storage": ("deployment.apps/local-path-provisioner",),
              "coredns": ("deployment.apps/coredns",)}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}


class NodeHealth(Health):
    def __init__(self, ctx: HostContext, version: str, unit: str, endpoint: str | None) -> None:
        commands = {"version": cfg.VERSION.command,
                    "active": unit_active(unit).command}
        if endpoint:
            commands["mirror"] = f"cat {shlex.quote(f'{CERTS}/{endpoint}/hosts.toml')}"
        super().__init__(ctx, f"Check k3s on {ctx.host.name}", commands)
        self.version, self.unit, self.endpoint = version, unit, endpoint

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        running = cfg.VERSION.read(facts, "version") or "no k3s binary"
        out = [(running == self.version, f"version {running} (pinned {self.version})"),
               (unit_active(self.unit).read(facts, "active") == "active",
                f"{self.unit} {facts['active'].out.strip() or 'unknown'}")]
        if self.endpoint:
            mirror = facts["mirror"]
            out.append((mirror.ok and f"http://{self.endpoint}" in mirror.out,
                        f"images pulled through http://{self.endpoint} (k3s's hosts.toml)"))
        return out


class ClusterHealth(Health):
    def __init__(self, ctx: HostContext, nodes: tuple[str, ...], disabled: tuple[str, ...],
                 ) -> None:
        kubectl = ON_NODE["k3s"]
        super().__init__(ctx, "Check the cluster", {
            "nodes": cfg.NODES.command,
            "pods": f"{kubectl} get pods -A -o json",
            "system": f"{kubectl} get deployments,daemonsets -n kube-system -o name"})
        self.nodes, self.disabled = nodes, disabled

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        if not facts["nodes"].ok:
            return [(False, f"the API does not answer: {facts['nodes'].out.strip()[-200:]}")]
        seen = cfg.NODES.read(facts, "nodes") or {}
        out = [(bool(seen.get(n, {}).get("ready")),
                f"node {n} " + ("Ready" if seen.get(n, {}).get("ready") else
                                "NotReady" if n in seen else "not registered"))
               for n in self.nodes]
        pods = [p for p in _json(facts["pods"].out).get("items", [])
                if p.get("metadata", {}).get("namespace") == "kube-system"]
        down = [p["metadata"]["name"] for p in pods
                if p.get("status", {}).get("phase") not in ("Running", "Succeeded")]
        out.append((not down and bool(pods),
                    f"{len(pods) - len(down)}/{len(pods)} system pods running"
                    + (f" (not: {', '.join(down)})" if down else "")))
        present = facts["system"].out.split()
        for component in self.disabled:
            found = [p for p in present for prefix in COMPONENTS.get(component, ())
                     if p.startswith(prefix)]
            out.append((not found, f"{component} disabled"
                        + (f" but present: {', '.join(found)}" if found else "")))
        return out


def check_plan(ctx: HostContext) -> Plan:
    cluster = cluster_of(ctx.inventory)
    plan = Plan()
    plan.add(NodeHealth(ctx, cluster.version, cfg.unit_name(ctx.host),
                        registry_endpoint(ctx.inventory)))
    if ctx.host.name == cluster.first_server:
        plan.add(ClusterHealth(ctx, cluster.nodes, cluster.disable))
    return plan


CHECK = Runbook("k3s.check", (SERVER, AGENT), check_plan)
