"""Turn an inventory into the lab's topology plan (pure: names, addresses, kinds).

Addressing rules (documented in runbooks/lab/README.md):
- management bridge ``gr<id>-mgmt`` in the machine's namespace gets the first address of
  ``lab.management``; each host's ``mgmt0`` gets ``host.address`` with that prefix.
- the VLAN is one bridge ``br<vlan id>`` in the lab's switch namespace; each host gets a veth
  named ``host.vlan.name`` on it. Boards carry ``vlan.address``; the gateway (role
  ``gateway``) gets its VLAN address only when ``vlan.managed`` is false (the dell-gateway
  runbook configures it otherwise). Hosts other than the gateway get a default route via
  ``network.gateway``.
- the upstream namespace has a bridge with the first address of ``lab.upstream``; hosts with
  ``upstream:`` get a veth of that name with the next addresses (.2, .3, ... in file order)
  and a default route via the first address.
- a host with role ``client`` (a laptop on the VLAN) routes through the host with role
  ``router`` (its VLAN address) when the inventory has one, so what it reaches it reaches
  through the router, and it ignores ICMP redirects (so it keeps doing so after the router
  pointed it at a node once).
- a VLAN parent that is not the upstream interface exists as a veth whose peer idles,
  unbridged, in the switch namespace (this kernel has no dummy driver).
- LAN segments (a host's ``lab: {lan: {IFNAME: ADDRESS/PREFIX}}``): one bridge ``lan<n>`` per
  subnet in the switch namespace, beside the VLAN's; each entry a veth of that name on it.
  The router's LAN is the audience's network: a host on a LAN and on neither the VLAN nor
  upstream (a client there) routes by default via the address that the host with role
  ``router`` has on the same LAN, and ignores ICMP redirects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from runbooks.lab.access import bridge_name, lab_id
from runbooks.lab.schema import host_lab, lab_of

DEFAULT_MANAGEMENT = "10.231.0.0/24"
DEFAULT_UPSTREAM = "10.231.1.0/24"
PROXY_PORT = 3142
BOARD_MODELS = {
    "raspberrypi": "Raspberry Pi 4 Model B Rev 1.5",
    "lepotato": "Libre Computer AML-S905X-CC",
}


class PlanError(ValueError):
    """The inventory cannot be turned into a lab (names the file, key and the fix)."""


@dataclass
class GuestPlan:
    """One lab guest: a host of the inventory or a DHCP client."""

    name: str
    kind: str  # "systemd" | "chroot" | "client"
    netns: str
    index: int
    mgmt_address: IPv4Interface | None = None
    mgmt_peer: str | None = None
    vlan_if: str | None = None
    vlan_address: IPv4Interface | None = None
    vlan_port: str | None = None
    dummy_ifs: list[str] = field(default_factory=list)
    upstream_if: str | None = None
    upstream_address: IPv4Interface | None = None
    upstream_port: str | None = None
    default_route: IPv4Address | None = None
    board: str | None = None
    boot: str | None = None
    seed: tuple[str, ...] = ()
    model: str | None = None
    accept_redirects: bool = True
    # (interface, address, switch-side port, bridge) on LAN segments
    lans: list[tuple[str, IPv4Interface, str, str]] = field(default_factory=list)
    default_dev: str | None = None  # the default route's interface (else upstream or VLAN)

    def mac(self, link: str) -> str:
        """Deterministic locally administered MAC for one of this guest's links."""
        digest = hashlib.sha1(f"{self.netns}/{link}".encode()).digest()
        return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


@dataclass
class LabPlan:
    """The whole lab: bridges, namespaces and guests."""

    site: str
    lab_id: str
    inventory_path: str
    bridge: str
    bridge_address: IPv4Interface
    switch_ns: str
    upstream_ns: str
    vlan_bridge: str
    upstream_gateway: IPv4Interface
    proxy_port: int
    guests: list[GuestPlan]
    lan_bridges: dict[IPv4Network, str] = field(default_factory=dict)  # subnet -> bridge

    def guest(self, name: str) -> GuestPlan:
        """The guest called ``name`` (KeyError naming the known guests otherwise)."""
        for guest in self.guests:
            if guest.name == name:
                return guest
        known = ", ".join(g.name for g in self.guests)
        raise KeyError(f"no lab host {name!r} (known: {known})")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read an attribute or a mapping key defensively."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _network(value: Any, fallback: str) -> IPv4Network:
    net = ip_network(str(value or fallback), strict=False)
    if not isinstance(net, IPv4Network):
        raise PlanError(f"lab network {value} must be IPv4")
    return net


def make_plan(inventory: Any) -> LabPlan:
    """Build the plan for ``inventory`` (an Inventory of runbooks.core.inventory)."""
    site = str(_get(inventory, "site", "lab"))
    raw_path = _get(inventory, "path")
    path = str(Path(raw_path).resolve()) if raw_path else "?"
    lab = lab_of(inventory)
    if lab is None:
        raise PlanError(f"{path}: no top-level `lab:` section; add lab.management, "
                        "lab.upstream (see hosts/lab.yaml)")
    ident = lab_id(site)
    mgmt = _network(_get(lab, "management"), DEFAULT_MANAGEMENT)
    upstream = _network(_get(lab, "upstream"), DEFAULT_UPSTREAM)
    if mgmt.overlaps(upstream):
        raise PlanError(f"{path}: lab.management {mgmt} overlaps lab.upstream {upstream}")
    network = _get(inventory, "network")
    vlan_id = int(_get(network, "vlan_id", 100) or 100)
    net_gateway = _get(network, "gateway")
    up_hosts = list(upstream.hosts())
    mgmt_hosts = list(mgmt.hosts())
    guests: list[GuestPlan] = []
    up_next = 1
    router_address: IPv4Address | None = None
    client_guests: list[GuestPlan] = []
    lan_bridges: dict[IPv4Network, str] = {}
    lan_routers: dict[IPv4Network, IPv4Address] = {}
    hosts = _get(inventory, "hosts", {}) or {}
    for index, (name, host) in enumerate(hosts.items()):
        hlab = host_lab(host)
        kind = str(_get(hlab, "kind", "systemd") or "systemd")
        if kind not in ("systemd", "chroot"):
            raise PlanError(f"{path}: hosts.{name}.lab.kind is {kind!r}; use systemd or chroot")
        address = ip_address(str(_get(host, "address")))
        if address not in mgmt or address == mgmt_hosts[0]:
            raise PlanError(
                f"{path}: hosts.{name}.address {address} must lie in lab.management {mgmt} "
                f"and differ from {mgmt_hosts[0]} (the machine's side of the bridge)")
        roles = tuple(_get(host, "roles", ()) or ())
        guest = GuestPlan(
            name=name, kind=kind, netns=f"gr{ident}-{name}", index=index,
            mgmt_address=IPv4Interface(f"{address}/{mgmt.prefixlen}"),
            mgmt_peer=f"gr{ident}m{index}",
            board=_get(host, "board"), boot=_get(hlab, "boot"),
            seed=tuple(_get(hlab, "seed", ()) or ()),
        )
        guest.model = _get(hlab, "model") or BOARD_MODELS.get(str(guest.board))
        upstream_if = _get(host, "upstream")
        if upstream_if:
            if up_next >= len(up_hosts):
                raise PlanError(f"{path}: lab.upstream {upstream} is too small")
            guest.upstream_if = str(upstream_if)
            guest.upstream_address = IPv4Interface(f"{up_hosts[up_next]}/{upstream.prefixlen}")
            guest.upstream_port = f"u{index}"
            guest.default_route = up_hosts[0]
            up_next += 1
        vlan = _get(host, "vlan")
        if vlan is not None:
            parent = _get(vlan, "parent")
            guest.vlan_if = str(_get(vlan, "name") or f"{parent or 'eth0'}.{vlan_id}")
            guest.vlan_port = f"v{index}"
            managed = bool(_get(vlan, "managed", False))
            vaddr = _get(vlan, "address")
            is_gateway = "gateway" in roles
            if vaddr is not None and not (is_gateway and managed):
                guest.vlan_address = IPv4Interface(str(vaddr))
            if not is_gateway and guest.default_route is None and net_gateway is not None:
                guest.default_route = IPv4Address(str(net_gateway))
            if parent and str(parent) != guest.upstream_if:
                guest.dummy_ifs.append(str(parent))
        _plan_lans(path, name, guest, getattr(hlab, "lan", ()) or (), lan_bridges,
                   (mgmt, upstream, _get(network, "subnet")))
        guests.append(guest)
        if "router" in roles:
            if guest.vlan_address is not None and router_address is None:
                router_address = guest.vlan_address.ip
            for _if, address, _port, _br in guest.lans:
                lan_routers.setdefault(address.network, address.ip)
        if "client" in roles:
            client_guests.append(guest)
    for guest in client_guests:
        if guest.upstream_if is not None:
            continue
        if guest.vlan_if is not None and router_address is not None:
            guest.default_route = router_address
            guest.accept_redirects = False
        elif guest.vlan_if is None and guest.lans:
            ifname, address, _port, _br = guest.lans[0]
            gateway = lan_routers.get(address.network)
            if gateway is None:
                raise PlanError(f"{path}: hosts.{guest.name}.lab.lan.{ifname}: no host with "
                                f"role router is on {address.network}; give the router an "
                                f"address there (its lab: {{lan: ...}})")
            guest.default_route, guest.default_dev = gateway, ifname
            guest.accept_redirects = False
    clients = _get(lab, "clients", ("microvm",))
    for cname in clients or ():
        index = len(guests)
        if cname in hosts:
            raise PlanError(f"{path}: lab.clients entry {cname!r} is also a host name")
        guests.append(GuestPlan(name=str(cname), kind="client", netns=f"gr{ident}-{cname}",
                                index=index, vlan_if="eth0", vlan_port=f"v{index}"))
    return LabPlan(
        site=site, lab_id=ident, inventory_path=path, bridge=bridge_name(site),
        bridge_address=IPv4Interface(f"{mgmt_hosts[0]}/{mgmt.prefixlen}"),
        switch_ns=f"gr{ident}_switch", upstream_ns=f"gr{ident}_upstream",
        vlan_bridge=f"br{vlan_id}",
        upstream_gateway=IPv4Interface(f"{up_hosts[0]}/{upstream.prefixlen}"),
        proxy_port=PROXY_PORT, guests=guests, lan_bridges=lan_bridges,
    )


def _plan_lans(path: str, name: str, guest: GuestPlan,
               lans: tuple[tuple[str, IPv4Interface], ...],
               bridges: dict[IPv4Network, str], taken: tuple[Any, ...]) -> None:
    """The guest's LAN interfaces: a bridge per subnet (made on first use), a port each."""
    own = {guest.vlan_if, guest.upstream_if, *guest.dummy_ifs} - {None}
    for n, (ifname, address) in enumerate(lans):
        where = f"{path}: hosts.{name}.lab.lan.{ifname}"
        if ifname in own:
            raise PlanError(f"{where}: {ifname} is already this host's VLAN, parent or "
                            "upstream interface; pick another name")
        for other in taken:
            if other is not None and address.network.overlaps(ip_network(str(other))):
                raise PlanError(f"{where}: {address.network} overlaps {other} (the VLAN or a "
                                "lab network); give the LAN a subnet of its own")
        bridge = bridges.setdefault(address.network, f"lan{len(bridges)}")
        guest.lans.append((ifname, address, f"l{guest.index}x{n}", bridge))
