"""k3s's probe for demo.check: read-only facts gathered with every other probe's, then the
checks (version, unit, and on the first server every node Ready).

The version a node runs is proven by its binary's sha256 being the pinned release's (the
inventory's lock): read with the k3s plan's own fact for that file (its stamp, compared by
`stat`; the batch runs the same command once for both), not by starting the binary
(its version flag, a Go binary's start on every node; in the lab a Python start of the
double). Without a lock pinning the node's binary it asks the binary itself, as before."""

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
    pinned = _pinned(host, inventory)
    out = {"k3s/version": pinned[0] if pinned else cfg.VERSION.command,
           "k3s/active": unit_active(cfg.unit_name(host)).command}
    cluster = getattr(inventory, "sections", {}).get("cluster")
    if cluster is not None and host.name == cluster.first_server:
        out["k3s/nodes"] = cfg.NODES.command
    return out


def _pinned(host: Any, inventory: Any) -> tuple[str, str] | None:
    """(the binary's fact command, its pinned sha256), None without a cluster or a pin."""
    if getattr(inventory, "sections", {}).get("cluster") is None:
        return None
    from runbooks.k3s.plan import binary_fact  # the plan's modules: only on a cluster

    return binary_fact(inventory, host)


def _binary(pinned: tuple[str, str], result: Any, version: str) -> tuple[bool, str]:
    """(ok, what) of the binary fact's answer: the pinned file (stamped or hashed), else
    the sha256 found or "none"."""
    lines = result.out.splitlines() if result.ok else []
    found = lines[0].split()[0] if lines and lines[0].split() else ""
    if found == pinned[1]:
        return True, f"{version} (pinned {version}, sha256 {found[:12]})"
    if not found or not all(c in "0123456789abcdef" for c in found) or len(found) != 64:
        return False, f"none (pinned {version})"
    return False, f"not the pinned {version}: {cfg.BINARY} has sha256 {found[:12]}"


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    cluster = getattr(inventory, "sections", {}).get("cluster")
    pinned = cluster.version if cluster is not None else "?"
    binary = _pinned(host, inventory)
    if binary is not None:
        ok, what = _binary(binary, found["k3s/version"], pinned)
        yield Check("k3s version", ok, what, FIX)
    else:
        running = cfg.VERSION.read(found, "k3s/version") or "none"
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
