"""microk8s's probe for demo.check: read-only facts gathered with every other probe's, then
the checks (every node: snap installed and held, microk8s running; the seed node: every node
Ready, high availability with three control-plane nodes or more, every addon enabled, the
ingress Service there when the inventory asks for it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.common.microk8s_cluster import ROLE, Microk8sCluster
from runbooks.core.readonly import Check

ROLES = (ROLE,)


FIX = "inv microk8s"


def _cluster(inventory: Any) -> Microk8sCluster | None:
    cluster = getattr(inventory, "sections", {}).get("cluster")
    return cluster if isinstance(cluster, Microk8sCluster) else None


def facts(host: Any, inventory: Any) -> dict[str, str]:
    from runbooks.microk8s.ingress import LIVE
    from runbooks.microk8s.plan import ADDONS, NODES

    out = {"microk8s/snap": "snap list microk8s 2>/dev/null | awk 'NR==2 {print $3, $NF}'",
           "microk8s/status": ADDONS.command}
    cluster = _cluster(inventory)
    if cluster is not None and host.name == cluster.seed:
        out["microk8s/nodes"] = NODES.command
        if cluster.ingress_service:
            out["microk8s/ingress"] = LIVE.command
    return out


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    from runbooks.microk8s.plan import NODES, ha_expected, parse_addons, parse_ha

    cluster = _cluster(inventory)
    snap = found["microk8s/snap"].out.split() if found["microk8s/snap"].ok else []
    yield Check("microk8s snap held", len(snap) == 2 and "held" in snap[1],
                f"revision {snap[0]}, {snap[1]}" if len(snap) == 2 else "not installed", FIX)
    status = found["microk8s/status"]
    running = status.ok and "microk8s is running" in status.out
    yield Check("microk8s running", running, "running" if running else
                (status.out.strip().splitlines() or ["not running"])[0] +
                " (`microk8s inspect` on the node says why)", FIX)
    if cluster is None or "microk8s/nodes" not in found:
        return
    state = NODES.read(found, "microk8s/nodes")
    bad = [f"{n} ({state.get(n, 'missing')})" for n in cluster.nodes if state.get(n) != "Ready"]
    yield Check("nodes Ready", not bad, f"not Ready: {', '.join(bad)}" if bad else
                f"{len(cluster.nodes)} of {len(cluster.nodes)}", FIX)
    if running and ha_expected(cluster):
        said = parse_ha(status.out)
        yield Check("high availability", said == "yes", f"high-availability: {said}", FIX)
    if running:  # else the addons are unknown, not disabled
        enabled = parse_addons(status.out)
        off = [a.name for a in cluster.addons if not enabled.get(a.name)]
        yield Check("addons enabled", not off, f"not enabled: {', '.join(off)}" if off else
                    ", ".join(a.name for a in cluster.addons) or "(none asked)", FIX)
    if "microk8s/ingress" in found:
        from runbooks.microk8s.ingress import LIVE

        service = LIVE.read(found, "microk8s/ingress")  # None: not there
        spec = service.get("spec") if isinstance(service, dict) else None
        kind = "" if service is None else str(
            spec.get("type") or "unreadable" if isinstance(spec, dict) else "unreadable")
        yield Check("ingress Service", kind == "LoadBalancer",
                    f"ingress/ingress type {kind}" if kind else "ingress/ingress missing", FIX)
