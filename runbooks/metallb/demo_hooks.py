"""metallb's probe for demo.check: on the cluster's first server, read-only.

Checks the controller Deployment is Available, the webhook Service has endpoints (else CRs
are refused: metallb#1597), the site's IPAddressPools exist, and every Service of type
LoadBalancer has an address (the demo's included). Facts are gathered in demo.check's one
round trip per host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.common import cluster_reads
from runbooks.common.bgp import metallb_of
from runbooks.common.kubectl import items_of, kubectl_on_node
from runbooks.core.readonly import Check
from runbooks.metallb.services import parse_services

ROLES = ("k3s-server", "microk8s")
NAMESPACE = "metallb-system"
# MetalLB's BGP-mode objects, listed by one kubectl: the probe reads its pools in it, and
# the lab's speaker double (runbooks/lab/doubles/bgp_speaker.py) reads the same listing, so
# a check lists them once
OBJECTS = "ipaddresspools,bgppeers,bgpadvertisements"


def objects_command(kubectl: str) -> str:
    """The listing of MetalLB's pools, peers and advertisements in its namespace."""
    return f"{kubectl} get {OBJECTS} -n {NAMESPACE} -o json"


FIX = "inv metallb"


def _cluster(inventory: Any) -> Any:
    return (getattr(inventory, "sections", None) or {}).get("cluster")


def facts(host: Any, inventory: Any) -> dict[str, str]:
    cluster = _cluster(inventory)
    if cluster is None or metallb_of(inventory) is None or host.name != cluster.first_server:
        return {}
    kubectl = kubectl_on_node(cluster.distribution)
    # the controller, the webhook's endpoints and the Services: in the cluster read other
    # probes share (one kubectl for all of them); the pools are MetalLB's own kind
    return {"metallb/cluster": cluster_reads.command(kubectl),
            "metallb/pools": objects_command(kubectl)}


def _json(found: Mapping[str, Any], key: str) -> Any:
    try:
        return json.loads(found[key].out) if found[key].ok else {}
    except ValueError:
        return {}


def _one(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(iter(cluster_reads.pick(items, kind, NAMESPACE, name)), {})


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    if "metallb/cluster" not in found:
        return
    metallb = metallb_of(inventory)
    items = items_of(found["metallb/cluster"]) or []
    conditions = (_one(items, "Deployment", "controller").get("status") or {}).get(
        "conditions")
    available = any(c.get("type") == "Available" and c.get("status") == "True"
                    for c in conditions or [])
    yield Check("MetalLB controller Available", available,
                "Available" if available else "not Available (or not installed)", FIX)
    subsets = _one(items, "Endpoints", "metallb-webhook-service").get("subsets") or []
    ready = any(s.get("addresses") for s in subsets)
    yield Check("MetalLB webhook endpoints", ready,
                "ready" if ready else "none: the webhook refuses pools and peers", FIX)
    have = {(p.get("metadata") or {}).get("name")
            for p in _json(found, "metallb/pools").get("items") or []
            if isinstance(p, dict) and p.get("kind", "IPAddressPool") == "IPAddressPool"}
    wanted = [p.name for p in metallb.pools] if metallb is not None else []
    missing = [name for name in wanted if name not in have]
    yield Check("MetalLB pools", not missing,
                f"missing: {', '.join(missing)}" if missing else ", ".join(wanted), FIX)
    assigned = parse_services({"items": cluster_reads.pick(items, "Service")})
    for name, addresses in sorted(assigned.addresses.items()):
        yield Check(f"LoadBalancer IP of {name}", True, ", ".join(addresses), FIX)
    for name in assigned.pending:
        yield Check(f"LoadBalancer IP of {name}", False, "pending: no address assigned", FIX)
    if not assigned.addresses and not assigned.pending:
        yield Check("LoadBalancer Services", False, "none in the cluster", FIX)
