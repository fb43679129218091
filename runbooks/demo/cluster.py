"""demo.check's cluster-wide probe: the cluster's system pods running.

On the cluster's first host (workloads.cluster_host: the first k3s server, else the first
microk8s node), read-only, in demo.check's one round trip per host: every Deployment and
DaemonSet in kube-system (coredns, metrics-server, local-path-provisioner, ... whatever the
distribution runs there) has all its pods ready. Nodes Ready, MetalLB and the BGP sessions
are the runbooks' own probes (k3s, microk8s, metallb, router).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.common import cluster_reads
from runbooks.common.kubectl import ON_NODE, items_of
from runbooks.core.readonly import Check
from runbooks.demo.workloads import CLUSTER_ROLES, cluster_host

ROLES = CLUSTER_ROLES
NAMESPACE = "kube-system"
KUBECTL = {"k3s-server": ON_NODE["k3s"], "microk8s": ON_NODE["microk8s"]}
KEY = "demo.cluster/system"


def kubectl_of(host: Any) -> str:
    """How kubectl runs on a cluster host: its distribution's own."""
    return next((KUBECTL[r] for r in CLUSTER_ROLES if r in host.roles), "kubectl")


def facts(host: Any, inventory: Any) -> dict[str, str]:
    first = cluster_host(inventory)
    if first is None or first.name != host.name:
        return {}
    return {KEY: cluster_reads.command(kubectl_of(host))}  # shared with other probes


def not_ready(item: Mapping[str, Any]) -> str | None:
    """`kind/name (ready/wanted)` when a Deployment or DaemonSet lacks ready pods, else None."""
    kind = item.get("kind", "?")
    name = (item.get("metadata") or {}).get("name", "?")
    status = item.get("status") or {}
    if kind == "DaemonSet":
        wanted = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
    else:
        wanted = int((item.get("spec") or {}).get("replicas", 1))
        ready = int(status.get("readyReplicas") or 0)
    return None if ready >= wanted else f"{kind.lower()}/{name} ({ready}/{wanted} ready)"


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    if KEY not in found:
        return
    fix = (f"`{kubectl_of(host)} get pods -n {NAMESPACE}` on {host.name} says why; "
           "inv demo.reset (or --from-scratch)")
    result = found[KEY]
    read = items_of(result)
    items = None if read is None else [
        *cluster_reads.pick(read, "Deployment", NAMESPACE),
        *cluster_reads.pick(read, "DaemonSet", NAMESPACE)]
    if items is None:
        yield Check("system pods", False, "cannot read kube-system's workloads: "
                    f"{(result.out or '').strip()[-160:] or 'no output'}", fix)
        return
    late = [text for text in map(not_ready, items) if text]
    yield Check("system pods", bool(items) and not late,
                f"not ready: {', '.join(late)}" if late else
                f"{len(items)} of {len(items)} kube-system workloads ready" if items else
                "no workloads in kube-system", "" if items and not late else fix)
