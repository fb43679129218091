"""The virtual lab's part of an inventory: the top-level `lab:` section and each host's `lab:`.

Core's inventory knows nothing of the lab: the CLI layer plugs this in (`declare()`, called
by `runbooks.lab.access.plug_in`, which tasks.py calls), and the inventory loader then
validates these keys with the rest of the file (file, line, key, did-you-mean). Without it a
`lab:` key is an unknown key. Read the results with `lab_of(inventory)` and `host_lab(host)`.

    lab:                               # only virtual-lab inventories have it
      management: 10.231.0.0/24        # the machine reaches every guest here
      upstream: 10.231.1.0/24          # the "internet" beyond the gateway
      clients: [microvm]               # DHCP client guests (no SSH, not hosts)
    hosts:
      rp0: {..., lab: {kind: systemd, boot: firmware, seed: [dphys-swapfile]}}
      edge: {..., lab: {lan: {eth1: 192.168.30.1/24}}}      # the router's own LAN ...
      audience: {..., lab: {kind: chroot, lan: {eth0: 192.168.30.10/24}}}   # ... a client on it

`lan:` puts a guest on a segment of its own (one per subnet, beside the VLAN): interface
name -> address with prefix. On a real site that segment is the router's LAN (the audience's
network), which greenroom does not make; in the lab the lab does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address
from typing import Any, ClassVar

from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_hosts import HOST_NAME
from runbooks.core.inventory_model import BOARD_BOOT, Host
from runbooks.core.inventory_network import special
from runbooks.core.inventory_schema import (
    HostKeyContext,
    Path_,
    SectionContext,
    declare_from,
    register_host_key,
    register_section,
)

LAB_KINDS: tuple[str, ...] = ("systemd", "chroot")
LAB_BOOTS: tuple[str, ...] = ("firmware", "legacy", "grub")
LAB_KEYS = {"management": True, "upstream": True, "clients": False}
HOST_LAB_KEYS = {"kind": False, "boot": False, "seed": False, "lan": False}
LAB_MGMT_IF = "mgmt0"  # every guest's management interface
_SEED_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class LabSpec:
    """The virtual lab's own networks (only in lab inventories)."""

    management: IPv4Network
    upstream: IPv4Network
    clients: tuple[str, ...] = ("microvm",)
    # the engine refuses to connect when no plug-in answers for such an inventory
    needs_access: ClassVar[str] = ("describes a virtual lab, but no lab is plugged into this "
                                   "command: run it through `inv` (tasks.py plugs the lab in)")


@dataclass(frozen=True)
class HostLab:
    """How the virtual lab runs a host: container kind, boot layout to imitate, seeded state."""

    kind: str = "systemd"
    boot: str | None = None
    seed: tuple[str, ...] = ()
    lan: tuple[tuple[str, IPv4Interface], ...] = ()  # (interface, address) on LAN segments


def declare() -> None:
    """Add the lab's keys to the inventory schema (read when the first inventory is)."""
    declare_from(__name__)


def lab_of(inventory: Any) -> LabSpec | None:
    """The inventory's `lab:` section, None for an inventory of real hosts."""
    return getattr(inventory, "sections", {}).get("lab")


def host_lab(host: Any) -> HostLab | None:
    """How the lab runs `host` (None outside lab inventories)."""
    return getattr(host, "sections", {}).get("lab")


@register_section("lab")
def read_lab(c: Collector, value: Any, ctx: SectionContext) -> LabSpec | None:
    """The lab section: two separate networks, clear of the VLAN subnet; every host inside
    the management network; client guests with names of their own."""
    if value is None:
        return None
    section = c.mapping(value, ("lab",), LAB_KEYS,
                        "lab: {management: 10.231.0.0/24, upstream: 10.231.1.0/24}")
    if section is None:
        return None
    management = c.network(section.get("management"), ("lab", "management"))
    upstream = c.network(section.get("upstream"), ("lab", "upstream"))
    subnet = ctx.network.subnet if ctx.network else _raw_subnet(ctx.raw)
    named = [("lab.management", ("lab", "management"), management),
             ("lab.upstream", ("lab", "upstream"), upstream),
             ("network.subnet", ("network", "subnet"), subnet)]
    for i, (name, path, net) in enumerate(named[:2]):
        for other_name, _, other in named[i + 1:]:
            if net and other and net.overlaps(other):
                c.add(path, f"{net} overlaps {other_name} {other}; the lab networks must be "
                            "separate: pick another private range, e.g. 10.231.x.0/24")
                if name == "lab.management":
                    management = None
                else:
                    upstream = None
    clients: tuple[str, ...] = ("microvm",)
    if section.get("clients") is not None:
        items = c.string_list(section.get("clients"), ("lab", "clients"), "client guest names")
        clients = tuple(name for _, name in items or [])
    _check_clients(c, clients, ctx.raw.get("hosts"))
    if management:
        for host in ctx.hosts.values():
            _check_address(c, host, management)
    if management and upstream:
        return LabSpec(management, upstream, clients)
    return None


def _raw_subnet(raw: Any) -> IPv4Network | None:
    """network.subnet as written, when the network section as a whole did not validate."""
    try:
        net = IPv4Network(str(raw.get("network", {}).get("subnet")))
    except (ValueError, AttributeError):
        return None
    return net


@register_host_key("lab")
def read_host_lab(c: Collector, value: Any, path: Path_, ctx: HostKeyContext) -> HostLab | None:
    """How the virtual lab runs this host; defaults apply only in lab inventories."""
    if ctx.raw.get("lab") is None:
        if value is not None:
            c.add(path, "host lab settings need a top-level 'lab:' section (only virtual-lab "
                        "inventories have one); add it or remove this key")
        return None
    if value is None:
        value = {}
    lab = c.mapping(value, path, HOST_LAB_KEYS, "lab: {kind: systemd, boot: firmware}")
    if lab is None:
        return None
    kind = c.choice(lab.get("kind", "systemd"), (*path, "kind"), LAB_KINDS, "lab kind")
    boot = c.choice(lab.get("boot"), (*path, "boot"), LAB_BOOTS, "boot layout")
    if lab.get("boot") is None and ctx.board:
        boot = BOARD_BOOT.get(ctx.board)
    seeds = c.string_list(lab.get("seed"), (*path, "seed"), "seed names")
    for item_path, seed in seeds or []:
        if not _SEED_NAME.match(seed):
            c.add(item_path, f"seed name {seed!r} must be lower-case letters, digits, '.', "
                             "'_' or '-' (like dphys-swapfile)")
    lan = _read_lan(c, lab.get("lan"), (*path, "lan"))
    if kind is None:
        return None
    return HostLab(kind, boot, tuple(seed for _, seed in seeds or []), lan)


def _read_lan(c: Collector, value: Any, path: Path_) -> tuple[tuple[str, IPv4Interface], ...]:
    """`lan: {eth1: 192.168.30.1/24}`: the guest's interfaces on LAN segments of the lab."""
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        c.add(path, "must map interface names to addresses, like lan: {eth1: 192.168.30.1/24}")
        return ()
    found: list[tuple[str, IPv4Interface]] = []
    for name, address in value.items():
        item = (*path, str(name))
        ifname = c.ifname(str(name), item)
        if ifname == LAB_MGMT_IF:
            c.add(item, f"'{LAB_MGMT_IF}' is the lab's own management interface in every "
                        "guest; pick another interface name")
            continue
        iface = c.interface_address(address, item)
        if ifname and iface is not None:
            if iface.network.prefixlen >= 31 or iface.ip in (iface.network.network_address,
                                                              iface.network.broadcast_address):
                c.add(item, f"{iface} is not a host address of a LAN; write it like "
                            "192.168.30.10/24")
                continue
            found.append((ifname, iface))
    return tuple(found)


def _check_clients(c: Collector, clients: tuple[str, ...], raw_hosts: Any) -> None:
    """Lab client guests need host-like names that differ from every host's name."""
    hosts = raw_hosts if isinstance(raw_hosts, dict) else {}
    for index, name in enumerate(clients):
        if not HOST_NAME.match(name):
            c.add(("lab", "clients", index), f"client name {name!r} is not a valid name: use "
                                             "lower-case letters, digits and '-' (like microvm)")
        elif name in hosts:
            c.add(("lab", "clients", index), f"client guest '{name}' has the name of a host; "
                                             "rename the client")


def _check_address(c: Collector, host: Host, management: IPv4Network) -> None:
    """In a lab inventory, the machine reaches every guest inside lab.management."""
    path = ("hosts", host.name, "address")
    try:
        address = ip_address(host.address)
    except ValueError:
        c.add(path, f"in a lab inventory the address must be an IP inside lab.management "
                    f"{management}, not {host.address!r}")
        return
    if not isinstance(address, IPv4Address) or address not in management:
        c.add(path, f"{address} is outside lab.management {management}; pick an address "
                    "inside it")
    elif kind := special(management, address):
        c.add(path, f"{address} is the {kind} address of lab.management {management}; "
                    "pick a host address")
    elif address == management[1]:
        c.add(path, f"{address} is the machine's own side of the lab bridge (the first address "
                    f"of lab.management {management}); start hosts at {management[2]}")
    for ifpath, ifname in _interfaces(host):
        if ifname == LAB_MGMT_IF:
            c.add(ifpath, f"'{LAB_MGMT_IF}' is the lab's own management interface in every "
                          "guest; pick another interface name")


def _interfaces(host: Host) -> list[tuple[tuple[str, ...], str]]:
    """(path, name) of every interface name the host's settings mention."""
    base: tuple[str, ...] = ("hosts", host.name)
    names: list[tuple[tuple[str, ...], str]] = []
    if host.upstream:
        names.append(((*base, "upstream"), host.upstream))
    if host.vlan:
        names += [((*base, "vlan", key), value) for key, value in
                  (("name", host.vlan.name), ("parent", host.vlan.parent)) if value]
    return names
