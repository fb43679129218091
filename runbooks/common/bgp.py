"""The site's BGP plan, read once for both sides: MetalLB in the cluster and the router.

The inventory's `metallb:` section says the cluster's ASN, its address pools and which routers
it peers with (by host name); a host with role `router` says its kind and ASN in `vars:`.
`site_plan(inventory)` joins them with the cluster nodes' addresses, so `inv metallb` and
`inv router` render their two halves from one description (no ASN typed twice).

`read_metallb()` validates the section (pools outside the DHCP range, the gateway, the VIP,
every host's static address and each other; ASNs in range; eBGP or iBGP as declared; peers
that are known routers), reporting every problem with file, line and key.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network, summarize_address_range
from typing import Any

from runbooks.common.section_names import ASN_MAX, RESERVED_ASNS
from runbooks.core import secrets

MODES = ("bgp", "l2")
# hosts whose VLAN address is a cluster node (a BGP speaker in MetalLB's BGP mode)
NODE_ROLES = ("k3s-server", "k3s-agent", "microk8s", "pi")
SECTION_KEYS = {"version": True, "mode": True, "asn": False, "pools": True, "peers": False,
                "ibgp": False, "password": False, "hold_time": False, "source": False,
                "backend": False}
BACKENDS = ("native", "frr")
PASSWORD_KEYS = {"env": True}
MIN_VERSION = (0, 13)
_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Pool:
    """One IPAddressPool: a name and its addresses as MetalLB writes them (CIDR or a-b)."""

    name: str
    addresses: tuple[str, ...]

    def networks(self) -> list[IPv4Network]:
        """Every address of the pool as networks (a range becomes its covering CIDRs)."""
        return [net for spec in self.addresses for net in pool_networks(spec)]


@dataclass(frozen=True)
class MetalLB:
    """The validated `metallb:` section."""

    version: str
    mode: str
    pools: tuple[Pool, ...]
    asn: int | None = None
    peers: tuple[str, ...] = ()
    ibgp: bool = False
    password_env: str | None = None
    hold_time: int | None = None
    source: str | None = None
    backend: str = "native"

    def password(self) -> str | None:
        """The BGP password from the environment (registered as a secret), or None."""
        return secrets.from_env(self.password_env) if self.password_env else None

    def networks(self) -> set[IPv4Network]:
        """Every pool's networks, once each: the only routes a router accepts."""
        return {net for pool in self.pools for net in pool.networks()}

    def cluster_asn(self) -> int:
        """The cluster's ASN, which a router's sessions need (ValueError: none given)."""
        if self.asn is None:
            raise ValueError("the metallb section has no cluster ASN")
        return self.asn


@dataclass(frozen=True)
class Router:
    """A host with role router: how greenroom speaks to it and its side of the sessions."""

    name: str
    kind: str
    asn: int
    address: IPv4Address
    subnets: tuple[IPv4Network, ...] = ()  # its own LANs (`lans:`): routed via it


@dataclass(frozen=True)
class Node:
    """A cluster node that announces LoadBalancer IPs: its name and its VLAN address."""

    name: str
    address: IPv4Address


@dataclass(frozen=True)
class SitePlan:
    """Both halves of the BGP sessions of a site."""

    metallb: MetalLB
    routers: tuple[Router, ...]
    nodes: tuple[Node, ...]

    def router(self, name: str) -> Router:
        """The router called `name` (KeyError otherwise)."""
        for router in self.routers:
            if router.name == name:
                return router
        raise KeyError(name)


class PlanError(ValueError):
    """The inventory lacks what BGP needs; the message says what to add."""


def pool_networks(spec: str) -> list[IPv4Network]:
    """`192.168.20.0/28` or `192.168.20.1-192.168.20.9` as networks; ValueError if neither."""
    if "-" in spec:
        first, _, last = spec.partition("-")
        start, end = ip_address(first.strip()), ip_address(last.strip())
        if not isinstance(start, IPv4Address) or not isinstance(end, IPv4Address):
            raise ValueError(f"{spec!r} is not an IPv4 range")
        if end < start:
            raise ValueError(f"{spec!r} ends before it starts")
        return list(summarize_address_range(start, end))  # type: ignore[arg-type]
    net = ip_network(spec.strip(), strict=True)
    if not isinstance(net, IPv4Network):
        raise ValueError(f"{spec!r} is not IPv4")
    return [net]


def host_address(host: Any) -> IPv4Address | None:
    """A host's address on the site's VLAN (its VLAN address, else an IP `address:`)."""
    vlan = getattr(host, "vlan", None)
    if vlan is not None and vlan.address is not None:
        return vlan.address.ip  # type: ignore[no-any-return]
    try:
        address = ip_address(str(host.address))
    except ValueError:
        return None
    return address if isinstance(address, IPv4Address) else None


def check_asn(c: Any, value: Any, path: Path_) -> int | None:
    """An ASN in 1..4294967294, not a reserved one; records a problem otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(path, f"must be an AS number (a whole number such as 64512), got {value!r}")
        return None
    if not 1 <= value < ASN_MAX or value in RESERVED_ASNS:
        c.add(path, f"AS number {value} is out of range or reserved; use a private one: "
                    "64512-65534 or 4200000000-4294967294")
        return None
    return value


def _pools(c: Any, value: Any, path: Path_, mode: str | None, network: Any,
           statics: dict[IPv4Address, str]) -> tuple[Pool, ...]:
    if not isinstance(value, dict) or not value:
        c.add(path, "must map pool names to address lists, e.g. "
                    "pools: {default: [192.168.20.0/28]}")
        return ()
    pools: list[Pool] = []
    seen: list[tuple[IPv4Network, str]] = []
    for name, addresses in value.items():
        ppath = (*path, str(name))
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", str(name)):
            c.add(ppath, f"pool name {name!r} must be a Kubernetes name (lower-case letters, "
                         "digits, '-')")
            continue
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list) or not addresses:
            c.add(ppath, "must be a list of CIDRs or ranges, e.g. [192.168.20.0/28]")
            continue
        specs: list[str] = []
        for index, spec in enumerate(addresses):
            ipath = (*ppath, index)
            try:
                nets = pool_networks(str(spec))
            except ValueError as exc:
                c.add(ipath, f"{spec!r} is not a pool: write a CIDR such as 192.168.20.0/28 or "
                             f"a range such as 192.168.20.1-192.168.20.9 ({exc})")
                continue
            for net in nets:
                _check_pool_net(c, ipath, str(spec), net, mode, network, statics, seen)
                seen.append((net, f"metallb.pools.{name}"))
            specs.append(str(spec))
        pools.append(Pool(str(name), tuple(specs)))
    return tuple(pools)


def _check_pool_net(c: Any, path: Path_, spec: str, net: IPv4Network, mode: str | None,
                    network: Any, statics: dict[IPv4Address, str],
                    seen: list[tuple[IPv4Network, str]]) -> None:
    for other, where in seen:
        if net.overlaps(other):
            c.add(path, f"{spec} overlaps {where} ({other}); pools must not share addresses")
            return
    if network is None:
        return
    subnet = network.subnet
    if mode == "l2" and not (net.subnet_of(subnet)):
        c.add(path, f"{spec} lies outside the VLAN subnet {subnet}: in l2 mode the pool must "
                    "be inside it (nodes answer ARP for it); use mode: bgp or another range")
        return
    if not net.overlaps(subnet):
        return
    dhcp = network.dhcp
    if net[0] <= dhcp.end and dhcp.start <= net[-1]:
        c.add(path, f"{spec} overlaps the DHCP range {dhcp.start}-{dhcp.end}; choose addresses "
                    "outside it (network.dhcp.range)")
        return
    if net.network_address == subnet.network_address or net.broadcast_address == \
            subnet.broadcast_address:
        c.add(path, f"{spec} contains the subnet's network or broadcast address; shrink it")
        return
    taken = {network.gateway: "network.gateway", **statics}
    if network.vip is not None:
        taken[network.vip] = "network.vip"
    for address, owner in taken.items():
        if address in net:
            c.add(path, f"{spec} contains {address}, which {owner} already uses; choose "
                        "free addresses")
            return


def read_metallb(c: Any, value: Any, hosts: dict[str, Any], network: Any) -> MetalLB | None:
    """Validate the `metallb:` section against the hosts and network read before it."""
    path: Path_ = ("metallb",)
    section = c.mapping(value, path, SECTION_KEYS,
                        "metallb: {version: v0.14.9, mode: bgp, asn: 64513, "
                        "pools: {default: [192.168.20.0/28]}, peers: [edge]}")
    if section is None:
        return None
    problems_before = len(c.problems)
    version = c.text(section.get("version"), (*path, "version"), "a MetalLB release")
    if version is not None:
        match = _VERSION.fullmatch(version)
        if match is None:
            c.add((*path, "version"), f"{version!r} is not a MetalLB release; write one such "
                                      "as v0.14.9")
        elif (int(match[1]), int(match[2])) < MIN_VERSION:
            c.add((*path, "version"), f"{version} is older than v0.13: its manifests carry "
                                      "PodSecurityPolicy (gone since Kubernetes 1.25) and a "
                                      "ConfigMap config; use v0.13 or later (inv "
                                      "metallb.convert turns an old ConfigMap into this section)")
    mode = c.choice(section.get("mode"), (*path, "mode"), MODES, "MetalLB mode")
    statics = {}
    for name, host in hosts.items():
        address = host_address(host)
        if address is not None:
            statics[address] = f"host {name}"
    pools = _pools(c, section.get("pools"), (*path, "pools"), mode, network, statics)
    asn = None
    peers: list[str] = []
    ibgp = c.boolean(section.get("ibgp", False), (*path, "ibgp")) or False
    if mode == "bgp":
        if section.get("asn") is None:
            c.add((*path, "asn"), "mode bgp needs the cluster's AS number, e.g. asn: 64513")
        else:
            asn = check_asn(c, section.get("asn"), (*path, "asn"))
        peers = _peers(c, section.get("peers"), (*path, "peers"), hosts, asn, ibgp)
    elif section.get("peers") or section.get("asn") is not None:
        key = "peers" if section.get("peers") else "asn"
        c.add((*path, key), f"mode l2 has no BGP {key}; remove it or use mode: bgp")
    password_env = None
    if section.get("password") is not None:
        secret = c.mapping(section.get("password"), (*path, "password"), PASSWORD_KEYS,
                           "password: {env: GREENROOM_BGP_PASSWORD}")
        if secret is not None:
            name = c.text(secret.get("env"), (*path, "password", "env"),
                          "an environment variable name")
            if name is not None and not _ENV_NAME.fullmatch(name):
                c.add((*path, "password", "env"), f"{name!r} is not an environment variable "
                                                  "name (upper case, digits, '_')")
            password_env = name
    hold_time = None
    if section.get("hold_time") is not None:
        hold_time = c.integer(section.get("hold_time"), (*path, "hold_time"), 3, 65535,
                              "a BGP hold time in seconds")
    source = None
    if section.get("source") is not None:
        source = c.text(section.get("source"), (*path, "source"), "a URL")
        if source is not None and not re.fullmatch(r"https?://\S+", source):
            c.add((*path, "source"), f"{source!r} is not an http(s) URL of a mirror of "
                                     "MetalLB's repository files")
    backend = c.choice(section.get("backend", "native"), (*path, "backend"), BACKENDS,
                       "MetalLB manifest (native, or frr for the FRR backend)")
    if len(c.problems) > problems_before or version is None or mode is None \
            or backend is None:
        return None
    return MetalLB(version, mode, pools, asn, tuple(peers), ibgp, password_env, hold_time,
                   source, backend)


def _peers(c: Any, value: Any, path: Path_, hosts: dict[str, Any], asn: int | None,
           ibgp: bool) -> list[str]:
    items = c.string_list(value, path, "router host names")
    if not items:
        if items is not None or value is None:
            c.add(path, "mode bgp needs at least one router to peer with, e.g. peers: [edge]")
        return []
    routers = [name for name, host in hosts.items() if "router" in host.roles]
    names: list[str] = []
    for item_path, name in items:
        host = hosts.get(name)
        if host is None or "router" not in host.roles:
            close = difflib.get_close_matches(name, routers, n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"routers: {', '.join(routers) or '(none: give a host role router)'}")
            what = "is not a host" if host is None else "lacks role router"
            c.add(item_path, f"peer '{name}' {what}; {hint}")
            continue
        names.append(name)
        router_asn = (host.vars or {}).get("asn")
        if asn is None or not isinstance(router_asn, int) or isinstance(router_asn, bool):
            continue
        if router_asn == asn and not ibgp:
            c.add(item_path, f"router '{name}' has the cluster's own AS number {asn}, which "
                             "makes iBGP sessions; give the cluster another private ASN, or "
                             "set metallb.ibgp: true if you mean iBGP")
        elif router_asn != asn and ibgp:
            c.add(item_path, f"metallb.ibgp is true but router '{name}' has AS {router_asn}, "
                             f"not the cluster's {asn}; iBGP needs one AS on both sides")
    return names


def routers_of(inventory: Any) -> tuple[Router, ...]:
    """Every host with role router whose vars say kind and asn (validated before), with its
    LANs from the `lans:` section."""
    lans = (getattr(inventory, "sections", None) or {}).get("lans") or {}
    found = []
    for name, host in inventory.hosts.items():
        if "router" not in host.roles:
            continue
        variables = host.vars or {}
        address = host_address(host)
        if address is None or "kind" not in variables or "asn" not in variables:
            continue
        subnets = tuple(lans.get(name, ()))
        found.append(Router(name, str(variables["kind"]), int(variables["asn"]), address,
                            subnets))
    return tuple(found)


def nodes_of(inventory: Any) -> tuple[Node, ...]:
    """Cluster nodes (hosts with a node role) with a VLAN address, in file order."""
    found = []
    for name, host in inventory.hosts.items():
        if not any(role in host.roles for role in NODE_ROLES):
            continue
        address = host_address(host)
        if address is not None:
            found.append(Node(name, address))
    return tuple(found)


def metallb_of(inventory: Any) -> MetalLB | None:
    """The inventory's validated `metallb:` section, or None."""
    sections = getattr(inventory, "sections", None) or {}
    found = sections.get("metallb")
    return found if isinstance(found, MetalLB) else None


def site_plan(inventory: Any) -> SitePlan:
    """The site's BGP plan; PlanError when the inventory has no BGP-mode metallb section."""
    metallb = metallb_of(inventory)
    if metallb is None:
        raise PlanError(f"{inventory.path}: no `metallb:` section; add one (see README, "
                        "metallb) saying the cluster's ASN, pools and peers")
    if metallb.mode != "bgp":
        raise PlanError(f"{inventory.path}: metallb.mode is {metallb.mode}; routers take part "
                        "only in mode bgp")
    return SitePlan(metallb, routers_of(inventory), nodes_of(inventory))
