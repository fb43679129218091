"""The way back to the routers' LANs: the gateway routes each one via its router.

The VLAN's hosts (the cluster's nodes among them) have the gateway as their default route.
A client on a router's own LAN (the inventory's `lans: {edge: [192.168.30.0/24]}`: the
audience's network, behind the router that learns the LoadBalancer IPs over BGP)
is answered through that default route, so the gateway must know that the LAN lies behind
the router: `ip route replace 192.168.30.0/24 via <router's VLAN address> dev <VLAN
interface>` live, and the same again at every boot from `greenroom-routes.service`
(a oneshot unit, after the network is up; it waits up to 30 s for the VLAN interface's
address).

The unit is also the record of what greenroom routed: a route it lists (`ip route replace
NET via VIA dev DEV`) whose subnet the inventory no longer names is removed live, exactly
as it was made (a route to that subnet that someone pointed elsewhere is left alone), before
the unit is rewritten without it; with no LAN left, the unit is stopped, disabled and removed
(kept under /var/backups/greenroom/). So the gateway converges to the inventory, and
`--check` shows the removal: the route's `ip route del` and the unit's diff.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from runbooks.common.bgp import routers_of
from runbooks.core.facts import FactResult, file_command, parse_file
from runbooks.core.steps import (
    Action,
    Change,
    Command,
    File,
    Service,
    Step,
    StepFailed,
    daemon_reloaded,
    unified_diff,
)
from runbooks.core.steps.files import backup_command
from runbooks.core.templates import managed_from, render

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

UNIT = "greenroom-routes.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
# a route the unit makes: ExecStart=/sbin/ip route replace NET via VIA dev DEV
RECORDED = re.compile(r"^ExecStart=\S*ip route replace (\S+) via (\S+) dev (\S+)\s*$", re.M)


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


def recorded_routes(unit: str | None) -> list[tuple[str, str, str]]:
    """(subnet, via, dev) of every route the unit's text makes, in its order."""
    return RECORDED.findall(unit or "")


def live_routes(table: str) -> set[tuple[str, str, str]]:
    """(subnet, via, dev) of the routes with a gateway in `ip -4 route show`'s output."""
    found = set()
    for line in table.splitlines():
        words = line.split()
        if "via" in words[:-1] and "dev" in words[:-1]:
            found.add((words[0], words[words.index("via") + 1], words[words.index("dev") + 1]))
    return found


class DroppedRoutes(Step):
    """Ensure no route that the unit records, to a subnet the inventory dropped, is live:
    each one deleted as the unit made it (subnet, via, dev)."""

    def __init__(self, wanted: list[Route]) -> None:
        self.wanted = {str(r.subnet) for r in wanted}
        self.name = "Ensure no route to a LAN the inventory dropped"

    def facts(self) -> Mapping[str, str]:
        return {"unit": file_command(UNIT_PATH), "table": "ip -4 route show"}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"file:{UNIT_PATH}", "routes:ipv4"})

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not facts["table"].ok:
            raise StepFailed("cannot read the routing table (`ip -4 route show` failed: "
                             f"{facts['table'].out.strip() or 'no output'}); is iproute2 "
                             "installed on the gateway?")
        live = live_routes(facts["table"].out)
        changes = []
        for subnet, via, dev in recorded_routes(parse_file(facts["unit"]).content):
            if subnet in self.wanted or (subnet, via, dev) not in live:
                continue
            command = f"ip route del {subnet} via {via} dev {shlex.quote(dev)}"
            changes.append(Change(f"remove the route to {subnet} via {via} (its LAN is no "
                                  f"longer in the inventory's lans:): {command}",
                                  (Action(command),)))
        return changes


class UnitRemoved(Step):
    """Ensure the routes' unit file is gone (backed up first; systemd told)."""

    name = f"Ensure no {UNIT_PATH} (no LAN left in the inventory's lans:)"

    def facts(self) -> Mapping[str, str]:
        return {"file": file_command(UNIT_PATH)}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"file:{UNIT_PATH}", f"unit:{UNIT}"})

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        content = parse_file(facts["file"]).content
        if content is None:
            return []
        command = (f"{backup_command(UNIT_PATH)} && rm -f {shlex.quote(UNIT_PATH)} && "
                   "systemctl daemon-reload")
        return [Change(f"remove {UNIT_PATH}", (Action(command),),
                       unified_diff(UNIT_PATH, content, None))]


def route_steps(host: Host, inventory: Inventory) -> list[Step]:
    """The routes the inventory names dropped live when it no longer does; each wanted route
    live (replaced only when missing or different) and in a boot-time unit; with none
    wanted, no unit."""
    routes = lan_routes(host, inventory)
    if not routes:
        return [DroppedRoutes([]), Service(UNIT, enabled=False, running=False),
                UnitRemoved()]
    unit = render("dell_gateway/greenroom-routes.service.j2", source=managed_from(inventory),
                  dev=routes[0].dev, routes=routes)
    live: list[Step] = [Command(f"Ensure the route to {r.subnet} via {r.router} ({r.via})",
                                r.replace(), unless=r.present()) for r in routes]
    return [DroppedRoutes(routes), *live, File(UNIT_PATH, unit), daemon_reloaded(UNIT),
            Service(UNIT, enabled=True, running=None)]
