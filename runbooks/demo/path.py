"""demo.check from the audience's seat: every LoadBalancer IP answers through the router.

On each client host (role client: a laptop behind the router, whose default route is the
router's), read-only: the LoadBalancer IPs the cluster assigned (read on its first server)
each answer HTTP (metallb's `ClientHealth`, as `inv metallb.check` asks), and the client's
route to each is through a gateway, not on-link (`RoutedHealth`: `ip -4 route get`; the
router of the inventory is named when it is the next hop). demo finds metallb's parts by
name like every other part, so without the metallb runbook in this checkout, without a
`cluster:` or a `metallb:` section, or without a LoadBalancer Service (metallb's probe names
that), nothing is planned.

What the virtual lab proves with it: the laptop (on the VLAN, default route the router
edge's VLAN address, no route of its own to the pool) reaches the pool's addresses only
because edge learnt them over BGP from the speakers: its first packet goes laptop -> edge
-> a node; the nodes answer it directly on the VLAN (same subnet), and edge may redirect
later packets. A client on a subnet of its own behind the router (return traffic through
the router too) is not in the lab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from runbooks.common.bgp import routers_of
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Health, Plan
from runbooks.demo.order import Missing, load

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

ROLES = ("client",)


def next_hop(route: str) -> str | None:
    """The gateway in `ip -4 route get` output (`... via 192.168.10.6 dev eth0 ...`)."""
    words = route.split()
    return next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "via"), None)


class RoutedHealth(Health):
    """Each address is reached through a gateway (the router), not on this host's link."""

    def __init__(self, ctx: HostContext, addresses: Sequence[str],
                 routers: Mapping[str, str]) -> None:
        super().__init__(ctx, "Check the LoadBalancer IPs are reached through the router",
                         {a: f"ip -4 route get {a}" for a in addresses})
        self.addresses, self.routers = list(addresses), dict(routers)

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        out = []
        for address in self.addresses:
            hop = next_hop(facts[address].out) if facts[address].ok else None
            name = self.routers.get(hop or "")
            out.append((hop is not None,
                        f"route to {address} via {name} ({hop})" if name else
                        f"route to {address} via {hop}" if hop else
                        f"no route to {address} through a router "
                        f"({facts[address].out.strip()[-120:] or 'none'})"))
        return out


def path_plan(ctx: HostContext) -> Plan:
    sections = getattr(ctx.inventory, "sections", None) or {}
    if "cluster" not in sections or "metallb" not in sections:
        return Plan()
    try:
        from_cluster = load("runbooks.metallb.services:from_cluster")
        client_health = load("runbooks.metallb.health:ClientHealth")
    except Missing:
        return Plan()
    addresses = from_cluster(ctx).all()  # StepFailed (the server unreadable) -> NO-GO
    if not addresses:
        return Plan()
    routers = {str(r.address): r.name for r in routers_of(ctx.inventory)}
    return Plan(steps=[RoutedHealth(ctx, addresses, routers), client_health(ctx, addresses)])


PATH = Runbook("demo.path", ROLES, path_plan)
