"""The inventory's `lans:` section: the networks behind each router (its own LANs, where the
audience of a talk sits), which the gateway routes via that router's VLAN address.

    lans: {edge: [192.168.30.0/24]}      # router host name -> its LANs

Read with `runbooks.common.bgp.routers_of(inventory)` (each Router's `subnets`).
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_schema import SectionContext, register_section


@register_section("lans")
def read_lans(c: Collector, value: Any, ctx: SectionContext,
              ) -> dict[str, tuple[IPv4Network, ...]] | None:
    """Router names -> their LANs: each a network of its own, clear of the VLAN's subnet."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        c.add(("lans",), "must map router host names to their networks, like "
                         "lans: {edge: [192.168.30.0/24]}")
        return None
    routers = [name for name, host in ctx.hosts.items() if "router" in host.roles]
    vlan = ctx.network.subnet if ctx.network else None
    found: dict[str, tuple[IPv4Network, ...]] = {}
    seen: list[tuple[IPv4Network, str]] = []
    for name, nets in value.items():
        path = ("lans", str(name))
        if str(name) not in routers:
            c.add(path, f"'{name}' is not a host with role router; use one of: "
                        f"{', '.join(routers) or '(none: give a host roles: [router])'}")
            continue
        if not isinstance(nets, list) or not nets:
            c.add(path, "must be a list of networks, like [192.168.30.0/24]")
            continue
        mine: list[IPv4Network] = []
        for index, item in enumerate(nets):
            net = c.network(item, (*path, index))
            if net is None:
                continue
            clash = ([("the VLAN's network.subnet", vlan)] if vlan else []) + \
                [(f"lans.{other}", prior) for prior, other in seen]
            bad = next((what for what, other in clash if net.overlaps(other)), None)
            if bad:
                c.add((*path, index), f"{net} overlaps {bad}; a router's LAN is a network "
                                      "of its own")
                continue
            seen.append((net, str(name)))
            mine.append(net)
        found[str(name)] = tuple(mine)
    return found
