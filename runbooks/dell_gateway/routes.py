"""The way back to the routers' LANs: the gateway routes each one via its router.

The VLAN's hosts (the cluster's nodes among them) have the gateway as their default route.
A client on a router's own LAN (the inventory's `lans: {edge: [192.168.30.0/24]}`: the
audience's network, behind the router that learns the LoadBalancer IPs over BGP)
is answered through that default route, so the gateway must know that the LAN lies behind
the router: `ip route replace 192.168.30.0/24 via <router's VLAN address> dev <VLAN
interface>` live, and the same again at every boot from `greenroom-routes.service`
(a oneshot unit, after the network is up; it waits up to 30 s for the VLAN interface's
address). Nothing is planned without such a router. A subnet the inventory no longer names
keeps its live route until the next boot.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from runbooks.common.bgp import routers_of
from runbooks.core.steps import Command, File, Service, Step, StepFailed, daemon_reloaded
from runbooks.core.templates import managed_from, render

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

UNIT = "greenroom-routes.service"


@dataclass(frozen=True)
class Route:
    """One LAN behind a router, reached via the router's VLAN address."""

    subnet: IPv4Network
    via: IPv4Address
    dev: str
    router: str

    def replace(self) -> str:
        """The command that makes (or corrects) the route."""
        return f"ip route replace {self.subnet} via {self.via} dev {shlex.quote(self.dev)}"

    def present(self) -> str:
        """A shell test, true when the route is there as wanted."""
        return (f'[ -n "$(ip -4 route show to exact {self.subnet} via {self.via} '
                f'dev {shlex.quote(self.dev)})" ]')


def lan_routes(host: Host, inventory: Inventory) -> list[Route]:
    """The routes the gateway needs: one per subnet a router declares (StepFailed when a
    subnet overlaps the VLAN, which the gateway reaches on its own link)."""
    vlan = inventory.network.subnet
    dev = host.vlan.name if host.vlan else ""
    routes = []
    for router in routers_of(inventory):
        for subnet in router.subnets:
            if subnet.overlaps(vlan):
                raise StepFailed(f"{inventory.path}: lans.{router.name}: "
                                 f"{subnet} overlaps the VLAN's {vlan}; list only the "
                                 "networks behind the router")
            if router.address not in vlan:
                raise StepFailed(f"{inventory.path}: hosts.{router.name}: its address "
                                 f"{router.address} is not on the VLAN {vlan}; give it "
                                 "vlan.address so the gateway can route its subnets via it")
            routes.append(Route(subnet, router.address, dev, router.name))
    return routes


def route_steps(host: Host, inventory: Inventory) -> list[Step]:
    """Each route live (replaced only when missing or different) and in a boot-time unit."""
    routes = lan_routes(host, inventory)
    if not routes:
        return []
    unit = render("dell_gateway/greenroom-routes.service.j2", source=managed_from(inventory),
                  dev=routes[0].dev, routes=routes)
    live: list[Step] = [Command(f"Ensure the route to {r.subnet} via {r.router} ({r.via})",
                                r.replace(), unless=r.present()) for r in routes]
    return [*live, File(f"/etc/systemd/system/{UNIT}", unit), daemon_reloaded(UNIT),
            Service(UNIT, enabled=True, running=None)]
