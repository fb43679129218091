"""demo.check from the audience's seat: every LoadBalancer IP answers through the router.

On each client host (role client: a laptop behind the router, whose default route is the
router's), read-only: the LoadBalancer IPs the cluster assigned (read on its first server)
each answer HTTP (metallb's `ClientHealth`, as `inv metallb.check` asks); the client's route
to each is through a gateway, not on-link (`RoutedHealth`: `ip -4 route get`; the router of
the inventory is named when it is the next hop, by its VLAN address or one of its LANs
(`lans:`); and the way back (`ReturnHealth`): a client whose source address lies
outside the VLAN's subnet is answered only through a router, so an answer proves the reply
path as well; it also asks the VLAN's gateway (`network.gateway`, the default route of the
VLAN's hosts, the nodes among them) and the router for one ping each from that address, so a
missing way back is named as such: the router answers but the gateway does not (no route to
the client's LAN via the router; `inv dell-gateway` makes it from the inventory's
`lans:`). A client on the VLAN is answered directly by the nodes: said, not failed.
demo finds metallb's parts by name like every other part, so without the metallb runbook in
this checkout, without a `cluster:` or a `metallb:` section, or without a LoadBalancer
Service (metallb's probe names that), nothing is planned.

The return path, as on a real site: the router knows its own LAN (connected) and learns the
LoadBalancer IPs from the speakers; the speakers import nothing (MetalLB's don't), so the
nodes answer a client on the router's LAN through their default route, the gateway, which
routes that LAN via the router (dell-gateway's `routes.py`). Both directions cross the router.

What the virtual lab proves with it (hosts/lab.yaml):
- `laptop` (on the VLAN, default route edge's VLAN address, no route of its own to the pool)
  reaches the pool's addresses only because edge learnt them over BGP from the speakers: its
  first packet goes laptop -> edge -> a node; the nodes answer it directly on the VLAN.
- `audience` sits on edge's own LAN (192.168.30.0/24, a segment of the lab's beside the VLAN,
  edge's `eth1` 192.168.30.1; default route edge's): the request goes audience -> edge -> a
  node, the answer node -> dell -> edge -> audience (dell may redirect the node to edge
  directly: still through the router). tests/lab/test_demo_cluster.py: GO when converged;
  NO-GO naming this check with every speaker stopped (edge withdraws the routes) or with
  dell's route to the LAN removed (the nodes' answers go nowhere); demo.reset puts both back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import TYPE_CHECKING

from runbooks.common.bgp import Router, routers_of
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Health, Plan
from runbooks.demo.order import Missing, load

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

ROLES = ("client",)


def route_word(route: str, word: str) -> str | None:
    """The value after `word` in `ip -4 route get` output (`... via 192.168.10.6 dev eth0
    src 192.168.10.7 ...`), None when absent."""
    words = route.split()
    return next((words[i + 1] for i, w in enumerate(words[:-1]) if w == word), None)


def next_hop(route: str) -> str | None:
    """The gateway in `ip -4 route get` output (`... via 192.168.10.6 dev eth0 ...`)."""
    return route_word(route, "via")


def _ipv4(text: str | None) -> IPv4Address | None:
    try:
        address = ip_address(text or "")
    except ValueError:
        return None
    return address if isinstance(address, IPv4Address) else None


def router_by_address(routers: Sequence[Router], address: str | None) -> Router | None:
    """The router whose VLAN address is `address`, or on whose LAN (`lans:`) it is."""
    found = _ipv4(address)
    if found is None:
        return None
    return (next((r for r in routers if r.address == found), None)
            or next((r for r in routers if any(found in net for net in r.subnets)), None))


def ping(address: IPv4Address) -> str:
    """One ping, 2 s at the most."""
    return f"ping -c 1 -W 2 -n -q {address}"


class RoutedHealth(Health):
    """Each address is reached through a gateway (the router), not on this host's link."""

    def __init__(self, ctx: HostContext, addresses: Sequence[str],
                 routers: Sequence[Router]) -> None:
        super().__init__(ctx, "Check the LoadBalancer IPs are reached through the router",
                         {a: f"ip -4 route get {a}" for a in addresses})
        self.addresses, self.routers = list(addresses), list(routers)

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        out = []
        for address in self.addresses:
            hop = next_hop(facts[address].out) if facts[address].ok else None
            router = router_by_address(self.routers, hop)
            name = router.name if router else None
            out.append((hop is not None,
                        f"route to {address} via {name} ({hop})" if name else
                        f"route to {address} via {hop}" if hop else
                        f"no route to {address} through a router "
                        f"({facts[address].out.strip()[-120:] or 'none'})"))
        return out


class ReturnHealth(Health):
    """The answers come back through the router: this client is not on the VLAN, and the
    VLAN's gateway (the nodes' way back) answers its address while the router does."""

    def __init__(self, ctx: HostContext, address: str, vlan: IPv4Network,
                 gateway: IPv4Address | None, routers: Sequence[Router]) -> None:
        pings = {f"ping {r.address}": ping(r.address) for r in routers}
        if gateway is not None:
            pings["ping gateway"] = ping(gateway)
        super().__init__(ctx, "Check the answers come back through the router",
                         {"route": f"ip -4 route get {address}", **pings})
        self.address, self.vlan, self.gateway = address, vlan, gateway
        self.routers = list(routers)

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        route = facts["route"]
        source = _ipv4(route_word(route.out, "src")) if route.ok else None
        if source is None:
            return []  # no route at all: RoutedHealth names it
        if source in self.vlan:
            return [(True, f"answers come straight back on the VLAN ({source} is on "
                           f"{self.vlan}; a client on a LAN behind the router proves the way "
                           "back too)")]
        router = router_by_address(self.routers, str(source)) or router_by_address(
            self.routers, next_hop(route.out))
        lan = next((net for net in (router.subnets if router else ()) if source in net), None)
        gateway_ok = "ping gateway" in facts and facts["ping gateway"].ok
        where = f"the VLAN's gateway ({self.gateway})"
        if gateway_ok and router is not None:
            return [(True, f"answers come back through {router.name}: {source} is on "
                           f"{lan or 'a LAN'}, not the VLAN, and {where} answers it")]
        if gateway_ok:
            return [(True, f"answers come back through a router: {source} is not on the "
                           f"VLAN {self.vlan} and {where} answers it")]
        fix = (f"it needs a route to {lan} via {router.name} (`inv dell-gateway` adds it from "
               f"lans.{router.name} of the inventory)" if router and lan else
               f"declare {source}'s network under the inventory's lans.<router>, then run "
               "`inv dell-gateway` (it routes that network via the router)")
        if router is not None and facts[f"ping {router.address}"].ok:
            return [(False, f"no way back from the VLAN to {source}: {router.name} "
                            f"({router.address}) answers it, {where} does not; {fix}")]
        name = f"{router.name} ({router.address})" if router else "no router"
        return [(False, f"no way back from the VLAN to {source}: {name} and {where} do not "
                        f"answer it; {fix}")]


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
    routers = routers_of(ctx.inventory)
    network = ctx.inventory.network
    # the way out, the way back, then the answer (a missing way back is named as such)
    return Plan(steps=[RoutedHealth(ctx, addresses, routers),
                       ReturnHealth(ctx, addresses[0], network.subnet, network.gateway,
                                    routers),
                       client_health(ctx, addresses)])


PATH = Runbook("demo.path", ROLES, path_plan)
