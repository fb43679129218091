"""Validate the `network:` section of an inventory (VLAN id, subnet, DHCP, VIP).

`read_network` returns a partially filled `NetPlan` even when some values are wrong, so the
host checks can still compare host addresses against whatever parts of the plan are valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_model import Dhcp, Network

NETWORK_KEYS = {"vlan": True, "subnet": True, "gateway": True, "dhcp": True, "vip": False}
DHCP_KEYS = {"range": True, "dns": True, "default_lease": False, "max_lease": False}
DEFAULT_LEASE, MAX_LEASE = 600, 7200


@dataclass
class NetPlan:
    """The parts of the network section that parsed (None where a value was wrong)."""

    vlan_id: int | None = None
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    start: IPv4Address | None = None
    end: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] | None = None
    default_lease: int | None = DEFAULT_LEASE
    max_lease: int | None = MAX_LEASE
    vip: IPv4Address | None = None
    vip_given: bool = False

    def in_pool(self, address: IPv4Address) -> bool:
        """True when `address` falls inside a valid DHCP pool."""
        return bool(self.start and self.end and self.start <= address <= self.end)

    def pool(self) -> str:
        """The pool as 'start-end' for messages."""
        return f"{self.start}-{self.end}"

    def build(self) -> Network | None:
        """The Network, when every required part is valid."""
        parts = (self.vlan_id, self.subnet, self.gateway, self.start, self.end, self.dns,
                 self.default_lease, self.max_lease)
        if any(part is None for part in parts) or (self.vip_given and self.vip is None):
            return None
        assert self.subnet and self.gateway and self.start and self.end and self.dns is not None
        dhcp = Dhcp(self.start, self.end, self.dns, int(self.default_lease or 0),
                    int(self.max_lease or 0))
        return Network(int(self.vlan_id or 0), self.subnet, self.gateway, dhcp, self.vip)


def special(subnet: IPv4Network, address: IPv4Address) -> str | None:
    """'network' or 'broadcast' when `address` is one of the subnet's reserved addresses."""
    if subnet.prefixlen >= 31:
        return None
    if address == subnet.network_address:
        return "network"
    if address == subnet.broadcast_address:
        return "broadcast"
    return None


def read_network(c: Collector, value: Any) -> NetPlan:
    """Check the network section; every problem goes to `c`."""
    plan = NetPlan()
    section = c.mapping(value, ("network",), NETWORK_KEYS,
                        "network: {vlan: {id: 100}, subnet: 192.168.10.0/25, ...}")
    if section is None:
        return plan
    vlan = section.get("vlan")
    if vlan is not None and c.mapping(vlan, ("network", "vlan"), {"id": True},
                                      "vlan: {id: 100}") is not None:
        plan.vlan_id = c.integer(vlan.get("id"), ("network", "vlan", "id"), 1, 4094,
                                 "a VLAN id (as set on the switch)")
    plan.subnet = c.network(section.get("subnet"), ("network", "subnet"))
    plan.gateway = c.ipv4(section.get("gateway"), ("network", "gateway"))
    if plan.subnet and plan.gateway:
        _check_gateway(c, plan)
    _read_dhcp(c, section.get("dhcp"), plan)
    plan.vip_given = section.get("vip") is not None
    plan.vip = c.ipv4(section.get("vip"), ("network", "vip"))
    if plan.vip:
        _check_vip(c, plan)
    return plan


def _check_gateway(c: Collector, plan: NetPlan) -> None:
    """The gateway must be a usable address inside the subnet."""
    assert plan.subnet and plan.gateway
    path = ("network", "gateway")
    if plan.gateway not in plan.subnet:
        example = plan.subnet[2] if plan.subnet.num_addresses > 2 else plan.subnet[0]
        c.add(path, f"gateway {plan.gateway} is outside the subnet {plan.subnet}; pick an "
                    f"address inside it, e.g. {example}")
        plan.gateway = None
    elif kind := special(plan.subnet, plan.gateway):
        c.add(path, f"gateway {plan.gateway} is the {kind} address of {plan.subnet}; pick a "
                    "host address inside it")
        plan.gateway = None


def _read_dhcp(c: Collector, value: Any, plan: NetPlan) -> None:
    """Check the DHCP pool, DNS servers and lease times."""
    base = ("network", "dhcp")
    dhcp = c.mapping(value, base, DHCP_KEYS,
                     "dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [8.8.8.8]}") \
        if value is not None else None
    if dhcp is None:
        return
    _read_range(c, dhcp.get("range"), plan)
    dns = dhcp.get("dns")
    if dns is not None:
        if isinstance(dns, list) and dns:
            servers = [c.ipv4(item, (*base, "dns", i), "a DNS server IP address")
                       for i, item in enumerate(dns)]
            plan.dns = tuple(s for s in servers if s) if all(servers) else None
        else:
            c.add((*base, "dns"), "must be a non-empty list of DNS server IP addresses, like "
                                  "[8.8.8.8, 8.8.4.4]")
    plan.default_lease = c.integer(dhcp.get("default_lease", DEFAULT_LEASE),
                                   (*base, "default_lease"), 1, None, "seconds")
    plan.max_lease = c.integer(dhcp.get("max_lease", MAX_LEASE), (*base, "max_lease"), 1,
                               None, "seconds")
    if plan.default_lease and plan.max_lease and plan.default_lease > plan.max_lease:
        c.add((*base, "default_lease"),
              f"default_lease {plan.default_lease} is above max_lease {plan.max_lease}; lower "
              "it or raise max_lease")
        plan.default_lease = None


def _read_range(c: Collector, value: Any, plan: NetPlan) -> None:
    """The pool is [first, last], inside the subnet, clear of network/broadcast/gateway."""
    path = ("network", "dhcp", "range")
    if value is None:
        return
    if not isinstance(value, list) or len(value) != 2:
        c.add(path, "must be a list of two addresses [first, last], like "
                    "[192.168.10.26, 192.168.10.126]")
        return
    start = c.ipv4(value[0], (*path, 0))
    end = c.ipv4(value[1], (*path, 1))
    if not (start and end):
        return
    if start > end:
        c.add(path, f"range is reversed: {start} comes after {end}; write [{end}, {start}]")
        return
    if plan.subnet:
        outside = [str(a) for a in (start, end) if a not in plan.subnet]
        if outside:
            c.add(path, f"{' and '.join(outside)} outside the subnet {plan.subnet}; keep the "
                        "pool inside it")
            return
        for what, address in (("network", plan.subnet.network_address),
                              ("broadcast", plan.subnet.broadcast_address),
                              ("gateway", plan.gateway)):
            if address is not None and start <= address <= end and (
                    what == "gateway" or special(plan.subnet, address)):
                c.add(path, f"the pool {start}-{end} contains the {what} address {address}; "
                            "shrink the pool to leave it out")
                return
    plan.start, plan.end = start, end


def _check_vip(c: Collector, plan: NetPlan) -> None:
    """The VIP must be a free address inside the subnet, outside the DHCP pool."""
    assert plan.vip
    path, vip = ("network", "vip"), plan.vip
    message = None
    if plan.subnet and vip not in plan.subnet:
        message = f"VIP {vip} is outside the subnet {plan.subnet}; pick an address inside it"
    elif plan.subnet and (kind := special(plan.subnet, vip)):
        message = f"VIP {vip} is the {kind} address of {plan.subnet}; pick a host address"
    elif plan.gateway and vip == plan.gateway:
        message = f"VIP {vip} is the gateway address; pick another free address"
    elif plan.in_pool(vip):
        message = (f"VIP {vip} is inside the DHCP pool {plan.pool()}; pick an address outside "
                   "it so DHCP never hands it out")
    if message:
        c.add(path, message)
        plan.vip = None
