"""Lab network: management bridge, namespaces, veths, VLAN and upstream bridges.

Everything here is created by the lab: the management bridge in the machine's namespace
(the only lab address there), one network namespace per guest, a "switch" namespace with one
bridge per VLAN and one per LAN segment (the router's own LAN), and an "upstream" namespace.
Existing interfaces are never touched and nothing is forwarded or NATed in the machine's
namespace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from ipaddress import IPv4Network, ip_network
from pathlib import Path

from runbooks.lab.plan import GuestPlan, LabPlan

NETNS_DIR = Path("/run/netns")


class NetworkError(RuntimeError):
    """An ip command failed while building the lab network."""


def ip_batch(lines: list[str], netns: str | None = None) -> None:
    """Run ``ip`` commands as one batch (optionally in a namespace); raise on failure."""
    if not lines:
        return
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    proc = subprocess.run(cmd, input="\n".join(lines) + "\n", text=True,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        where = f" in namespace {netns}" if netns else ""
        raise NetworkError(f"ip failed{where}: {proc.stderr.strip()}\ncommands:\n"
                           + "\n".join(lines))


def drop_link(name: str, netns: str | None = None) -> None:
    """Delete a link if it exists. A veth whose peer lived in a namespace being deleted
    vanishes on its own a moment later, so "no such device" here is success, not a race."""
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "delete", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "Cannot find device" not in proc.stderr \
            and link_exists(name, netns):
        raise NetworkError(f"ip link delete {name} failed: {proc.stderr.strip()}")


def link_exists(name: str, netns: str | None = None) -> bool:
    """True when the interface exists (in ``netns`` or the machine's namespace)."""
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def netns_list() -> list[str]:
    """Names of the named network namespaces."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    """True when /run/netns/NAME exists."""
    return (NETNS_DIR / name).exists()


def netns_inode(name: str) -> int | None:
    """Inode of a named namespace (to match processes living in it)."""
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def netns_delete(name: str) -> None:
    """Delete a named namespace if present (its veths disappear with it)."""
    if netns_exists(name):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    if (NETNS_DIR / name).exists():  # a stale file whose mount is gone
        try:
            (NETNS_DIR / name).unlink()
        except OSError:
            pass


def netns_create(name: str) -> None:
    """Create a fresh named namespace with loopback up."""
    netns_delete(name)
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise NetworkError(f"ip netns add {name}: {proc.stderr.strip()}")
    ip_batch(["link set lo up"], netns=name)


def check_management_free(plan: LabPlan) -> None:
    """Refuse a management or upstream range that a route of the machine already uses."""
    proc = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                          capture_output=True, text=True, check=False)
    routes = json.loads(proc.stdout or "[]")
    wanted = [plan.bridge_address.network, plan.upstream_gateway.network]
    for route in routes:
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dev == plan.bridge or dst in ("", "default") or route.get("type") in (
                "local", "broadcast"):
            continue
        try:
            net = ip_network(dst, strict=False)
        except ValueError:
            continue
        for want in wanted:
            if isinstance(net, IPv4Network) and net.overlaps(want):
                raise NetworkError(
                    f"lab range {want} overlaps the machine's route {dst} dev {dev}; choose "
                    "other lab.management / lab.upstream ranges in the inventory")


def ensure_fabric(plan: LabPlan) -> None:
    """Create (idempotently) the management bridge, switch and upstream namespaces."""
    check_management_free(plan)
    if not link_exists(plan.bridge):
        ip_batch([f"link add {plan.bridge} type bridge", f"link set {plan.bridge} up"])
    addrs = subprocess.run(["ip", "-j", "addr", "show", "dev", plan.bridge],
                           capture_output=True, text=True, check=False).stdout
    if str(plan.bridge_address.ip) not in addrs:
        ip_batch([f"addr add {plan.bridge_address} dev {plan.bridge}"])
    if not link_exists(plan.vlan_bridge, plan.switch_ns):
        netns_create(plan.switch_ns)
        ip_batch([f"link add {plan.vlan_bridge} type bridge",
                  f"link set {plan.vlan_bridge} type bridge forward_delay 0",
                  f"link set {plan.vlan_bridge} up"], netns=plan.switch_ns)
    for bridge in plan.lan_bridges.values():  # LAN segments: beside the VLAN, not on it
        if not link_exists(bridge, plan.switch_ns):
            ip_batch([f"link add {bridge} type bridge",
                      f"link set {bridge} type bridge forward_delay 0",
                      f"link set {bridge} up"], netns=plan.switch_ns)
    if not link_exists("br0", plan.upstream_ns):
        netns_create(plan.upstream_ns)
        ip_batch(["link add br0 type bridge", "link set br0 type bridge forward_delay 0",
                  f"addr add {plan.upstream_gateway} dev br0", "link set br0 up"],
                 netns=plan.upstream_ns)


def wire_guest(plan: LabPlan, guest: GuestPlan) -> None:
    """Give one guest a fresh namespace with all its links (replaces an old one)."""
    ns = guest.netns
    netns_create(ns)
    if not guest.accept_redirects:
        # the guest's own namespace (net.* sysctls are per network namespace), before its
        # links exist: each new link takes `default`, and a host that does not forward takes
        # a redirect when either `all` or its link's own setting says so
        proc = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                               "net.ipv4.conf.all.accept_redirects=0",
                               "net.ipv4.conf.default.accept_redirects=0"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NetworkError(f"turning off ICMP redirects in {ns}: {proc.stderr.strip()}")
    root: list[str] = []
    inner: list[str] = []
    switch: list[str] = []
    upstream: list[str] = []
    if guest.mgmt_address is not None and guest.mgmt_peer:
        drop_link(guest.mgmt_peer)
        root += [f"link add {guest.mgmt_peer} type veth peer name mgmt0 netns {ns}",
                 f"link set {guest.mgmt_peer} master {plan.bridge} up"]
        inner += [f"link set mgmt0 address {guest.mac('mgmt0')}",
                  f"addr add {guest.mgmt_address} dev mgmt0", "link set mgmt0 up"]
    if guest.vlan_if and guest.vlan_port:
        drop_link(guest.vlan_port, plan.switch_ns)
        switch += [f"link add {guest.vlan_port} type veth peer name {guest.vlan_if} netns {ns}",
                   f"link set {guest.vlan_port} master {plan.vlan_bridge} up"]
        inner += [f"link set {guest.vlan_if} address {guest.mac(guest.vlan_if)}"]
        if guest.vlan_address is not None:
            inner.append(f"addr add {guest.vlan_address} dev {guest.vlan_if}")
        inner.append(f"link set {guest.vlan_if} up")
    if guest.upstream_if and guest.upstream_port:
        drop_link(guest.upstream_port, plan.upstream_ns)
        upstream += [f"link add {guest.upstream_port} type veth peer name "
                     f"{guest.upstream_if} netns {ns}",
                     f"link set {guest.upstream_port} master br0 up"]
        inner += [f"link set {guest.upstream_if} address {guest.mac(guest.upstream_if)}",
                  f"addr add {guest.upstream_address} dev {guest.upstream_if}",
                  f"link set {guest.upstream_if} up"]
    for ifname, address, port, bridge in guest.lans:
        drop_link(port, plan.switch_ns)
        switch += [f"link add {port} type veth peer name {ifname} netns {ns}",
                   f"link set {port} master {bridge} up"]
        inner += [f"link set {ifname} address {guest.mac(ifname)}",
                  f"addr add {address} dev {ifname}", f"link set {ifname} up"]
    for n, parent in enumerate(guest.dummy_ifs):
        # no dummy driver in this kernel: a veth whose peer idles (up, unbridged) in the switch
        port = f"d{guest.index}x{n}"
        drop_link(port, plan.switch_ns)
        switch += [f"link add {port} type veth peer name {parent} netns {ns}",
                   f"link set {port} up"]
        inner += [f"link set {parent} address {guest.mac(parent)}", f"link set {parent} up"]
    ip_batch(root)
    ip_batch(switch, netns=plan.switch_ns)
    ip_batch(upstream, netns=plan.upstream_ns)
    ip_batch(inner, netns=ns)
    if guest.default_route is not None:
        # onlink: the gateway may not have its VLAN address yet; the route still exists
        dev = guest.default_dev or guest.upstream_if or guest.vlan_if
        ip_batch([f"route add default via {guest.default_route} dev {dev} onlink"], netns=ns)


def unwire_guest(plan: LabPlan, guest: GuestPlan) -> None:
    """Remove a guest's namespace and any of its links left in the other namespaces."""
    netns_delete(guest.netns)
    if guest.mgmt_peer:
        drop_link(guest.mgmt_peer)


def lab_netns_names(plan: LabPlan) -> list[str]:
    """Existing namespaces that belong to this lab (also stale ones of removed hosts)."""
    own = (f"gr{plan.lab_id}-", )
    return [n for n in netns_list()
            if n.startswith(own) or n in (plan.switch_ns, plan.upstream_ns)]


def lab_root_links(plan: LabPlan) -> list[str]:
    """Existing links in the machine's namespace that belong to this lab."""
    pattern = re.compile(rf"gr{re.escape(plan.lab_id)}m\d+")
    return sorted(p.name for p in Path("/sys/class/net").iterdir()
                  if p.name == plan.bridge or pattern.fullmatch(p.name))


def teardown_fabric(plan: LabPlan) -> None:
    """Delete every namespace and machine-side link of this lab, the bridge last."""
    for name in lab_netns_names(plan):
        netns_delete(name)
    links = lab_root_links(plan)
    for link in sorted(links, key=lambda n: n == plan.bridge):
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
