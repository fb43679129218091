"""xen-dom0's `vars:` (hosts with role xen-dom0); what each key does:
runbooks/xen_dom0/settings.py. Checked when the inventory loads, before any host is touched:
ranges inside their bridge's subnet, reservations unique, inside the subnet and outside the
dynamic range, interface names within 15 characters, port forwards without clashes.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from runbooks.core.inventory_schema import Field, Table, register_vars

IFNAMSIZ = 15
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
XEN_OUI = "00:16:3e:"


def _ifname(value: Any) -> str | None:
    if _IFNAME.fullmatch(str(value)) and value not in (".", ".."):
        return None
    return (f"{value!r} is not an interface name: at most {IFNAMSIZ} letters, digits, '.', "
            "'-' or '_'")


def _ipv4(value: Any) -> str | None:
    try:
        IPv4Address(str(value))
    except ValueError:
        return f"{value!r} is not an IPv4 address such as 192.168.100.10"
    return None


def _interface(value: Any) -> str | None:
    try:
        iface = IPv4Interface(str(value))
    except ValueError:
        return f"{value!r} is not an address with prefix such as 192.168.100.1/24"
    if "/" not in str(value):
        return f"{value!r} needs its prefix length, e.g. {value}/24"
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        return f"{value!r} is the network's own or broadcast address; use a host address"
    return None


def _mac(value: Any) -> str | None:
    mac = str(value).lower()
    if _MAC.fullmatch(mac) and mac.startswith(XEN_OUI):
        return None
    return (f"{value!r} is not a MAC in Xen's range {XEN_OUI}xx:xx:xx (leave it out to get "
            "one generated)")


def _public_address(value: Any) -> str | None:
    return None if value == "dhcp" else _interface(value)


def _bridge_problems(bridge: dict[str, Any], index: int) -> list[str]:
    """The cross-key problems of one private bridge (types were checked by the schema)."""
    name = bridge.get("name", f"private_bridges[{index}]")
    if _interface(bridge.get("address")):
        return []  # the address's own check says what is wrong
    iface = IPv4Interface(str(bridge.get("address")))
    net = iface.network
    problems = []
    span = bridge.get("dhcp_range")
    low = high = None
    if span is not None:
        if not isinstance(span, list) or len(span) != 2 or any(_ipv4(a) for a in span):
            problems.append(f"{name}: dhcp_range must be [first, last] IPv4 addresses")
        else:
            low, high = IPv4Address(str(span[0])), IPv4Address(str(span[1]))
            for addr in (low, high):
                if addr not in net or addr in (net.network_address, net.broadcast_address):
                    problems.append(f"{name}: dhcp_range address {addr} is outside the "
                                    f"bridge's subnet {net} (or its network/broadcast address)")
            if low > high:
                problems.append(f"{name}: dhcp_range starts at {low}, after its end {high}")
            elif low <= iface.ip <= high:
                problems.append(f"{name}: dhcp_range {low}-{high} contains the bridge's own "
                                f"address {iface.ip}; start the range after it")
    seen: dict[str, dict[str, str]] = {"name": {}, "ip": {}, "mac": {}}
    for r in bridge.get("reservations") or []:
        if not isinstance(r, dict):
            continue
        rname = str(r.get("name"))
        for key in ("name", "ip", "mac"):
            value = str(r.get(key, "")).lower()
            if not value or value == "none":
                continue
            if value in seen[key]:
                problems.append(f"{name}: reservation {rname}: {key} {value} is also the "
                                f"{key} of reservation {seen[key][value]}")
            seen[key][value] = rname
        if _ipv4(r.get("ip")):
            continue
        ip = IPv4Address(str(r.get("ip")))
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            problems.append(f"{name}: reservation {rname}: {ip} is outside the bridge's "
                            f"subnet {net}")
        elif ip == iface.ip:
            problems.append(f"{name}: reservation {rname}: {ip} is the bridge's own address")
        elif low is not None and high is not None and low <= ip <= high:
            problems.append(f"{name}: reservation {rname}: {ip} is inside the dynamic range "
                            f"{low}-{high}; pick an address outside it")
    return problems


def _bridges(value: Any) -> str | None:
    """Problems across the private bridges: ranges, reservations, names, subnets."""
    if not isinstance(value, list):
        return None
    problems: list[str] = []
    names: set[str] = set()
    nets: list[tuple[str, IPv4Network]] = []
    for index, bridge in enumerate(value):
        if not isinstance(bridge, dict):
            continue
        name = str(bridge.get("name"))
        if name in names:
            problems.append(f"bridge name {name} is used twice")
        names.add(name)
        net = (None if _interface(bridge.get("address"))
               else IPv4Interface(str(bridge.get("address"))).network)
        for other_name, other in nets:
            if net is not None and net.overlaps(other):
                problems.append(f"{name}: subnet {net} overlaps {other_name}'s {other}")
        if net is not None:
            nets.append((name, net))
        problems += _bridge_problems(bridge, index)
    return "; ".join(problems) or None


def _forwards(value: Any) -> str | None:
    """Two forwards of one public port and protocol clash."""
    if not isinstance(value, list):
        return None
    seen: dict[tuple[str, int], int] = {}
    problems = []
    for index, fwd in enumerate(value):
        if not isinstance(fwd, dict) or not isinstance(fwd.get("port"), int):
            continue
        key = (str(fwd.get("protocol", "tcp")), int(fwd["port"]))
        if key in seen:
            problems.append(f"port_forwards[{index}]: {key[0]} port {key[1]} is already "
                            f"forwarded by port_forwards[{seen[key]}]")
        seen[key] = index
    return "; ".join(problems) or None


_MEMORY = r"\d+[KMGT]?"
RESERVATION = Table({
    "name": Field(str, "a host name for the guest", required=True,
                  pattern=r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"),
    "ip": Field(str, "an IPv4 address", required=True, check=_ipv4),
    "mac": Field(str, "a MAC in Xen's 00:16:3e range", check=_mac),
}, what="{name: k8s-master, ip: 192.168.100.10, mac: 00:16:3e:ee:ee:01}")
PRIVATE_BRIDGE = Table({
    "name": Field(str, "an interface name", required=True, check=_ifname),
    "address": Field(str, "dom0's address with prefix, e.g. 192.168.100.1/24", required=True,
                     check=_interface),
    "dhcp_range": Field(list, "[first, last] addresses handed out", items=Field(str)),
    "lease": Field(str, "a lease time such as 12h, 45m, 3600 or infinite",
                   pattern=r"\d+[smhdw]?|infinite"),
    "reservations": Field(list, "name/ip/mac entries", items=RESERVATION),
    "dnsmasq_options": Field(list, "extra dnsmasq.conf lines", items=Field(str)),
}, what="{name: virbr1, address: 192.168.100.1/24, dhcp_range: [...], reservations: [...]}")
PORT_FORWARD = Table({
    "port": Field(int, "the public port", required=True, low=1, high=65535),
    "to": Field(str, "the guest's IPv4 address", required=True, check=_ipv4),
    "to_port": Field(int, "the guest's port (default: the same)", low=1, high=65535),
    "protocol": Field(str, "tcp or udp", choices=("tcp", "udp")),
}, what="{port: 6443, to: 192.168.100.10}")

XEN_DOM0_VARS: dict[str, Field | Table] = {
    "dom0": Table({
        "memory": Field(str, "dom0's memory such as 4G or 4096M", pattern=_MEMORY),
        "max_memory": Field(str, "dom0's memory ceiling such as 4G", pattern=_MEMORY),
        "vcpus": Field(int, "how many vCPUs dom0 gets", low=1, high=4096),
        "pin": Field(bool, "pin dom0's vCPUs to physical CPUs (dom0_vcpus_pin)"),
    }, what="{memory: 4G, vcpus: 2, pin: true}"),
    "xen_default": Field(bool, "whether Xen is GRUB's default boot entry"),
    "public_bridge": Table({
        "name": Field(str, "an interface name", check=_ifname),
        "nic": Field(str, "the physical NIC the bridge takes over", required=True,
                     check=_ifname),
        "address": Field(str, "dhcp, or an address with prefix", check=_public_address),
        "gateway": Field(str, "the default gateway's IPv4 address", check=_ipv4),
    }, what="{name: xenbr0, nic: eno1, address: dhcp}"),
    "private_bridges": Field(list, "bridges for the guests", items=PRIVATE_BRIDGE,
                             check=_bridges),
    "port_forwards": Field(list, "public port -> guest address:port", items=PORT_FORWARD,
                           check=_forwards),
    "masquerade": Field(bool, "whether guests reach the outside through dom0's address"),
}

register_vars("xen-dom0", XEN_DOM0_VARS)
