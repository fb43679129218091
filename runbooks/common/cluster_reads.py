"""One read of the cluster's nodes, workloads, endpoints and Services, shared by read-only
probes.

demo.check's probes on the cluster's first server each need a few of these objects (the
nodes, the namespaces, the system pods, MetalLB's controller and webhook, the LoadBalancer
Services). Each asks for `command(kubectl)` under its own fact key; a fact batch runs one
command once however many keys ask for it (runbooks/core/facts.py), so the cluster is read
once (one kubectl, one API round trip) instead of once per object. `pick` takes each
probe's objects from it.
"""

from __future__ import annotations

from typing import Any

KINDS = "nodes,namespaces,deployments,daemonsets,endpoints,services"


def command(kubectl: str) -> str:
    """The shared read: every Node, Namespace, Deployment, DaemonSet, Endpoints and Service
    of the cluster (nodes and namespaces have no namespace: -A lists them all)."""
    return f"{kubectl} get {KINDS} -A -o json"


def pick(items: list[dict[str, Any]], kind: str, namespace: str | None = None,
         name: str | None = None) -> list[dict[str, Any]]:
    """The objects of `kind` (in `namespace`, named `name`, when given) among `items`."""
    out = []
    for item in items:
        meta = item.get("metadata") or {}
        if item.get("kind") != kind:
            continue
        if namespace is not None and meta.get("namespace", "default") != namespace:
            continue
        if name is not None and meta.get("name") != name:
            continue
        out.append(item)
    return out
