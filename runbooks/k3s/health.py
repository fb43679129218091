"""k3s's probe for demo.check: read-only facts gathered with every other probe's, then the
checks (version, unit, and on the first server every node Ready)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.common.kube_cluster import AGENT, SERVER
from runbooks.core.readonly import Check
from runbooks.core.steps.system import unit_active
from runbooks.k3s import config as cfg

ROLES = (SERVER, AGENT)


FIX = "inv k3s"


def facts(host: Any, inventory: Any) -> dict[str, str]:
    out = {"k3s/version": cfg.VERSION.command,
           "k3s/active": unit_active(cfg.unit_name(host)).command}
    cluster = getattr(inventory, "sections", {}).get("cluster")
    if cluster is not None and host.name == cluster.first_server:
        out["k3s/nodes"] = cfg.NODES.command
    return out


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    cluster = getattr(inventory, "sections", {}).get("cluster")
    running = cfg.VERSION.read(found, "k3s/version") or "none"
    pinned = cluster.version if cluster is not None else "?"
    yield Check("k3s version", running == pinned, f"{running} (pinned {pinned})", FIX)
    state = unit_active(cfg.unit_name(host)).read(found, "k3s/active")
    yield Check(f"{cfg.unit_name(host)} active", state == "active", state, FIX)
    if "k3s/nodes" in found and cluster is not None:
        nodes = cfg.NODES.read(found, "k3s/nodes") or {}
        ready = {name for name, status in nodes.items() if status["ready"]}
        missing = [n for n in cluster.nodes if n not in ready]
        yield Check("nodes Ready", not missing,
                    f"not Ready: {', '.join(missing)}" if missing else
                    f"{len(cluster.nodes)} of {len(cluster.nodes)}", FIX)
