"""router's probe for demo.check: on each router (kinds frr and bird), read-only.

Checks a BGP session with every cluster node is Established and the router has a BGP route
inside the MetalLB pools (the LoadBalancer IPs the cluster announces). When a node's speaker
stops, its session goes down and this says which. Only on sites with a `cluster:` section
(without one nothing announces). RouterOS routers are not read (no POSIX shell): `inv
metallb.check` explains how to look at them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from ipaddress import ip_address
from typing import Any

from runbooks.common.bgp import PlanError, site_plan
from runbooks.common.bgp_state import BGP_ROUTES, BGP_SESSIONS, node_states
from runbooks.core.readonly import Check

ROLES = ("router",)


FIX = "inv router; inv metallb.check"


def _router(host: Any, inventory: Any) -> tuple[Any, Any] | None:
    """(site plan, router) when `host` is a router to read: a kind with a shell, on a site
    whose cluster greenroom builds (no `cluster:` section: nothing announces yet)."""
    if "cluster" not in (getattr(inventory, "sections", None) or {}):
        return None
    try:
        site = site_plan(inventory)
        router = site.router(host.name)
    except (PlanError, KeyError):
        return None
    return (site, router) if router.kind in BGP_SESSIONS else None


def facts(host: Any, inventory: Any) -> dict[str, str]:
    found = _router(host, inventory)
    if found is None:
        return {}
    kind = found[1].kind
    return {"router/sessions": BGP_SESSIONS[kind].command,
            "router/routes": BGP_ROUTES[kind].command}


def _inside(target: str, networks: list[Any]) -> bool:
    """A host route (`ip -j` prints a /32 without its prefix) inside one of `networks`."""
    try:
        address = ip_address(target)
    except ValueError:
        return False
    return any(address in net for net in networks)


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    router_site = _router(host, inventory)
    if router_site is None or "router/sessions" not in found:
        return
    site, router = router_site
    states = node_states(router.kind, BGP_SESSIONS[router.kind].read(found, "router/sessions"),
                         [(n.name, str(n.address)) for n in site.nodes])
    for name, state in states.items():
        yield Check(f"BGP session with {name}", state == "Established", state, FIX)
    networks = list(site.metallb.networks())
    routes = sorted(t for t in BGP_ROUTES[router.kind].read(found, "router/routes")
                    if _inside(t, networks))
    yield Check("routes to LoadBalancer IPs", bool(routes),
                ", ".join(routes) if routes else "none learned from the cluster", FIX)
