"""Validate the `hosts:` section: each host's keys, then the checks across hosts.

Per host: address, user/port (with `defaults:`), roles, board, interfaces, VLAN, vars, and
the keys the layers above declare (runbooks.core.inventory_schema.register_host_key).
Across hosts: `via` chains, duplicate management and VLAN addresses, the gateway's VLAN
address.
"""

from __future__ import annotations

import difflib
import re
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from runbooks.core.inventory_fields import Collector, kind_of, shorter_vlan_name
from runbooks.core.inventory_model import KNOWN_BOARDS, KNOWN_ROLES, Host, Vlan
from runbooks.core.inventory_network import NetPlan, special
from runbooks.core.inventory_schema import HostKeyContext, check_vars, host_keys

HOST_KEYS = {"address": True, "user": False, "port": False, "via": False, "roles": False,
             "board": False, "upstream": False, "vlan": False, "vars": False}
VLAN_KEYS = {"name": False, "parent": False, "address": False, "managed": False}
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def read_hosts(c: Collector, value: Any, defaults: dict[str, Any], plan: NetPlan,
               raw: dict[str, Any]) -> dict[str, Host]:
    """Check every host; return those with a usable address, in file order."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.add(("hosts",), f"must be a mapping of host name to settings, got {kind_of(value)}; "
                          "write it like hosts: {rp0: {address: 192.168.10.3}}")
        return {}
    if not value:
        c.add(("hosts",), "no hosts defined; add at least one, e.g. "
                          "rp0: {address: 192.168.10.3, roles: [pi]}")
        return {}
    hosts: dict[str, Host] = {}
    for name, settings in value.items():
        host = _read_host(c, str(name), settings, defaults, plan, raw)
        if host is not None:
            hosts[host.name] = host
    return hosts


def _read_host(c: Collector, name: str, value: Any, defaults: dict[str, Any], plan: NetPlan,
               raw: dict[str, Any]) -> Host | None:
    """Check one host's settings."""
    base = ("hosts", name)
    if not HOST_NAME.match(name):
        c.add(base, f"host name {name!r} is not a valid name: use lower-case letters, digits "
                    "and '-' (like rp0 or dell)")
    elif name in KNOWN_ROLES:
        c.add(base, f"host name {name!r} is also a role name, so selecting it is ambiguous; "
                    "rename the host")
    declared = host_keys()
    settings = c.mapping(value, base, {**HOST_KEYS, **dict.fromkeys(declared, False)},
                         "rp0: {address: 192.168.10.3, roles: [pi]}")
    if settings is None:
        return None
    address = c.host_address(settings.get("address"), (*base, "address"))
    user = c.text(settings.get("user"), (*base, "user"), "a user name")
    if settings.get("user") is None:
        user = defaults.get("user")
        if user is None:
            c.add((*base, "user"), "no user to log in as; set defaults.user or "
                                   f"hosts.{name}.user")
    port = c.integer(settings.get("port"), (*base, "port"), 1, 65535, "an SSH port")
    if settings.get("port") is None:
        port = defaults.get("port", 22)
    via = c.text(settings.get("via"), (*base, "via"), "a host name")
    roles = _read_roles(c, settings.get("roles"), (*base, "roles"))
    board = c.choice(settings.get("board"), (*base, "board"), KNOWN_BOARDS, "board")
    upstream = c.ifname(settings.get("upstream"), (*base, "upstream"))
    vlan = _read_vlan(c, settings.get("vlan"), (*base, "vlan"), plan, "gateway" in roles)
    context = HostKeyContext(name, roles, board, raw)
    read = {key: reader(c, settings.get(key), (*base, key), context)
            for key, reader in declared.items()}
    if upstream and vlan and upstream == vlan.name:
        c.add((*base, "upstream"), f"upstream {upstream!r} is also the VLAN interface name; "
                                   "name the interface toward the internet (often vlan.parent)")
    host_vars = settings.get("vars") or {}
    check_vars(c, settings.get("vars"), (*base, "vars"), roles)  # keys declared per role
    if address is None:
        return None
    # Partly invalid hosts are still returned (with placeholders) so the checks across hosts
    # can report their other problems; no Inventory is built while any problem exists.
    return Host(name, address, user or "", port or 22, via, roles, board, upstream, vlan,
                dict(host_vars) if isinstance(host_vars, dict) else {},
                {key: value for key, value in read.items() if value is not None})


def _read_roles(c: Collector, value: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """Known role names, each once."""
    items = c.string_list(value, path, "role names")
    roles: list[str] = []
    for item_path, role in items or []:
        if c.choice(role, item_path, KNOWN_ROLES, "role") is None:
            continue
        if role in roles:
            c.add(item_path, f"role '{role}' is listed twice; remove one")
            continue
        roles.append(role)
    return tuple(roles)


def _read_vlan(c: Collector, value: Any, path: tuple[str, ...], plan: NetPlan,
               is_gateway: bool) -> Vlan | None:
    """The VLAN interface: name defaults to <parent>.<vlan id>; the gateway's address to the
    network gateway."""
    if value is None:
        return None
    vlan = c.mapping(value, path, VLAN_KEYS, "vlan: {parent: eth0, address: 192.168.10.3/25}")
    if vlan is None:
        return None
    parent = c.ifname(vlan.get("parent"), (*path, "parent"))
    given = vlan.get("name")
    suggestion = shorter_vlan_name(given if isinstance(given, str) else "", parent, plan.vlan_id)
    name = c.ifname(given, (*path, "name"), suggestion)
    if vlan.get("name") is None:
        if vlan.get("parent") is None:
            c.add((*path, "name"), "needs 'parent' (the physical interface, e.g. eth0) or "
                                   "'name' (an existing VLAN interface); add one")
        elif parent and plan.vlan_id:
            name = f"{parent}.{plan.vlan_id}"
            if len(name) > 15:
                c.add((*path, "name"), f"the default name {name!r} (<parent>.<vlan id>) is "
                      f"{len(name)} characters, Linux allows at most 15; set vlan.name to a "
                      f"shorter one, e.g. {shorter_vlan_name(name, parent, plan.vlan_id)}",
                      line=c.line((*path, "parent")))
                name = None
    address = c.interface_address(vlan.get("address"), (*path, "address"))
    if vlan.get("address") is None and is_gateway and plan.gateway and plan.subnet:
        address = IPv4Interface(f"{plan.gateway}/{plan.subnet.prefixlen}")
    managed = c.boolean(vlan.get("managed"), (*path, "managed"))
    if name and name == parent:
        c.add((*path, "name"), f"the VLAN interface cannot have its parent's name {parent!r}; "
                               f"use e.g. {parent}.{plan.vlan_id or 100}")
    # name is "" only when a problem was recorded above (so no Inventory gets built).
    return Vlan(name or "", parent, address, True if managed is None else managed)


def check_across_hosts(c: Collector, raw: Any, hosts: dict[str, Host], plan: NetPlan) -> None:
    """Checks that need all hosts: via chains, duplicates, gateway addresses."""
    names = list(raw) if isinstance(raw, dict) else []
    _check_via(c, hosts, [str(n) for n in names])
    seen: dict[str, str] = {}
    for host in hosts.values():
        key = host.address.lower()
        if key in seen:
            c.add(("hosts", host.name, "address"), f"{host.address} is already the address of "
                  f"host '{seen[key]}'; every host needs its own management address")
        else:
            seen[key] = host.name
    gateways = [h for h in hosts.values() if "gateway" in h.roles]
    for extra in gateways[1:]:
        c.add(("hosts", extra.name, "roles"), f"only one host may have role gateway; "
              f"'{gateways[0].name}' already has it")
    for gateway in gateways[:1]:
        if gateway.vlan is None:
            c.add(("hosts", gateway.name), "the gateway needs a vlan section naming its parent "
                  "interface, e.g. vlan: {parent: eth0}")
    _check_vlan_addresses(c, hosts, plan)


def _check_via(c: Collector, hosts: dict[str, Host], names: list[str]) -> None:
    """`via` names another defined host, and following via never loops."""
    for host in hosts.values():
        if host.via is None:
            continue
        path = ("hosts", host.name, "via")
        if host.via == host.name:
            c.add(path, f"host '{host.name}' cannot be reached via itself; remove via or name "
                        "the jump host")
        elif host.via not in names:
            close = difflib.get_close_matches(host.via, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"hosts: {', '.join(names)}"
            c.add(path, f"via names unknown host '{host.via}'; {hint}")
        else:
            chain, current = [host.name], host.via
            while current in hosts and current not in chain:
                chain.append(current)
                current = hosts[current].via  # type: ignore[assignment]
            if current == host.name:
                c.add(path, f"via makes a loop: {' -> '.join([*chain, current])}; one of these "
                            "hosts must be reachable directly")


def _check_vlan_addresses(c: Collector, hosts: dict[str, Host], plan: NetPlan) -> None:
    """VLAN addresses: inside the subnet with its prefix, outside the pool, each used once."""
    used: dict[IPv4Address, str] = {}
    if plan.vip:
        used[plan.vip] = "the VIP (network.vip)"
    for host in hosts.values():
        if host.vlan is None or host.vlan.address is None:
            continue
        path, iface = ("hosts", host.name, "vlan", "address"), host.vlan.address
        is_gateway = "gateway" in host.roles
        message = None
        if plan.subnet and iface.ip not in plan.subnet:
            message = f"{iface} is outside the subnet {plan.subnet}; pick an address inside it"
        elif plan.subnet and iface.network.prefixlen != plan.subnet.prefixlen:
            message = (f"{iface} has prefix /{iface.network.prefixlen} but the subnet is "
                       f"{plan.subnet}; write {iface.ip}/{plan.subnet.prefixlen}")
        elif plan.subnet and (kind := special(plan.subnet, iface.ip)):
            message = f"{iface} is the {kind} address of {plan.subnet}; pick a host address"
        elif plan.in_pool(iface.ip):
            message = (f"{iface} is inside the DHCP pool {plan.pool()}; pick an address "
                       "outside it")
        elif is_gateway and plan.gateway and iface.ip != plan.gateway:
            message = (f"the gateway's VLAN address {iface.ip} differs from network.gateway "
                       f"{plan.gateway}; make them equal (or drop vlan.address)")
        elif not is_gateway and plan.gateway and iface.ip == plan.gateway:
            message = (f"{iface.ip} is the gateway address (network.gateway); pick another "
                       "address")
        elif iface.ip in used:
            message = f"{iface.ip} is already used by {used[iface.ip]}; pick another address"
        if message:
            c.add(path, message)
        used.setdefault(iface.ip, f"host '{host.name}'")
