"""The VLAN interface: which tool manages the host's network, and the steps for each.

    facts = ctx.gather(vlan_facts(host))          # one round trip, in plan()
    plan.add(*vlan_steps(host, ctx.inventory, facts))

Backends, chosen from facts in this order (as the seed did by hand):
- nmcli: NetworkManager is running (`nmcli connection add type vlan ...`, Ubuntu 22.04);
- netplan: /etc/netplan/*.yaml exist (a `vlans:` section in a file of ours, Ubuntu 20.04);
- ifupdown: ifup and /etc/network/interfaces exist (a stanza in interfaces.d);
- iproute2: anything else (live `ip` commands plus a systemd unit that redoes them at boot).

Special cases:
- `vlan: {managed: false}` in the inventory: the interface comes from elsewhere; we only
  check that it exists, is up and has its address (a difference fails the run).
- the interface exists but is not a VLAN (a veth or tap provided by a user-space tagger, as
  in the virtual lab whose kernel has no 802.1q): we cannot create or convert it and never
  delete it; we converge its address with iproute2, live and persisted, whatever the backend.
- a name over 15 characters is refused before anything runs, with a shorter one suggested.

The gateway (dell-gateway) and the boards (pi-prep) both get their VLAN interface here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING

import yaml

from runbooks.common.facts import succeeded
from runbooks.common.kernel import KernelModule
from runbooks.common.links import LinkState, link_command, parse_link
from runbooks.core.facts import Fact, FactResult
from runbooks.core.inventory_fields import shorter_vlan_name
from runbooks.core.steps import (
    Action,
    Change,
    Edit,
    File,
    Service,
    Step,
    StepFailed,
    daemon_reloaded,
)
from runbooks.core.templates import render

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

IFNAMSIZ = 15
NETPLAN_FILE_MARK = "@@greenroom-netplan-file "


def netplan_files(out: str) -> dict[str, str]:
    """The netplan fact's output -> {path: text}."""
    files: dict[str, str] = {}
    current = None
    for line in out.splitlines(keepends=True):
        if line.startswith(NETPLAN_FILE_MARK):
            current = line[len(NETPLAN_FILE_MARK):].strip()
            files[current] = ""
        elif current is not None:
            files[current] += line
    return files


# What tells the backends apart, each a named fact (key = name, read in one round trip):
# NetworkManager installed and running
NETWORK_MANAGER: Fact[bool] = Fact(
    "vlan.nm", "command -v nmcli >/dev/null && systemctl is-active --quiet NetworkManager",
    succeeded)
# netplan's configuration files, {path: text}; {} without netplan or without a file
# (a last *.yaml that is no regular file does not fail the listing: `continue`)
NETPLAN: Fact[dict[str, str]] = Fact(
    "vlan.netplan",
    "command -v netplan >/dev/null && for f in /etc/netplan/*.yaml; do "
    f'[ -f "$f" ] || continue; echo "{NETPLAN_FILE_MARK}$f"; cat "$f"; done',
    lambda result: netplan_files(result.out) if result.ok else {})
# ifupdown installed, with its /etc/network/interfaces
IFUPDOWN: Fact[bool] = Fact(
    "vlan.ifupdown", "command -v ifup >/dev/null && [ -f /etc/network/interfaces ]", succeeded)
# systemd is the init system (the iproute2 backend's boot-time unit needs it)
SYSTEMD: Fact[bool] = Fact("vlan.systemd", "[ -d /run/systemd/system ]", succeeded)
BACKEND_FACTS = (NETWORK_MANAGER, NETPLAN, IFUPDOWN, SYSTEMD)


def vlan_facts(host: Host) -> dict[str, str]:
    """Fact commands that choose the backend for `host`'s VLAN interface (keys prefixed vlan.)."""
    name = host.vlan.name if host.vlan else ""
    return {"vlan.link": link_command(name), **{f.name: f.command for f in BACKEND_FACTS}}


def choose_backend(facts: Mapping[str, FactResult]) -> str:
    """The backend that manages the host's network: nmcli, netplan, ifupdown or iproute2."""
    if NETWORK_MANAGER.read(facts):
        return "nmcli"
    if NETPLAN.read(facts):
        return "netplan"
    if IFUPDOWN.read(facts):
        return "ifupdown"
    return "iproute2"


def vlan_steps(host: Host, inventory: Inventory, facts: Mapping[str, FactResult]) -> list[Step]:
    """The steps that give `host` its VLAN interface, for the backend its facts show."""
    where = f"{inventory.path}: hosts.{host.name}.vlan"
    vlan = host.vlan
    if vlan is None:
        raise StepFailed(f"{where}: missing; add e.g. vlan: {{parent: eth0}}")
    if len(vlan.name) > IFNAMSIZ:
        suggestion = shorter_vlan_name(vlan.name, vlan.parent, inventory.network.vlan_id)
        raise StepFailed(f"{where}.name: {vlan.name!r} is {len(vlan.name)} characters, Linux "
                         f"allows {IFNAMSIZ}; use a shorter name, e.g. {suggestion}")
    if vlan.address is None:
        raise StepFailed(f"{where}.address: missing; give the host its VLAN address, "
                         f"e.g. address: {inventory.network.gateway_interface}")
    vlan_id = inventory.network.vlan_id
    if not vlan.managed:
        return [LinkState(vlan.name, vlan.parent, vlan_id, vlan.address, create=False,
                          manage=False)]
    link = parse_link(vlan.name, facts["vlan.link"])
    provided = link.exists and link.kind != "vlan"
    backend = "iproute2" if provided else choose_backend(facts)
    if not provided and not vlan.parent:
        raise StepFailed(f"{where}.parent: missing; name the interface the VLAN rides on")
    if backend == "iproute2" and not SYSTEMD.read(facts):
        raise StepFailed(
            f"{host.name} has no NetworkManager, netplan, ifupdown or systemd to make "
            f"{vlan.name} persistent; install ifupdown, or provide the interface yourself "
            f"and set {where}.managed: false")
    build = BUILDERS[backend]
    return build(vlan.name, vlan.parent or "", vlan_id, str(vlan.address), not provided,
                 facts)


# -- backends -----------------------------------------------------------------------------

def iproute2_steps(name: str, parent: str, vlan_id: int, address: str, create: bool,
                   facts: Mapping[str, FactResult]) -> list[Step]:
    """Live `ip` commands plus a systemd unit that does the same at every boot."""
    unit = f"greenroom-vlan-{name}.service"
    content = render("common/greenroom-vlan.service.j2", runbook="vlan", ifname=name,
                     parent=parent, vlan_id=vlan_id, address=address, create=create,
                     wait_for=parent if create else name)
    steps: list[Step] = []
    if create:
        steps.append(KernelModule("8021q"))
    steps += [
        File(f"/etc/systemd/system/{unit}", content),
        daemon_reloaded(unit),
        LinkState(name, parent, vlan_id, _iface(address), create=create),
        Service(unit, enabled=True, running=True),
    ]
    return steps


NM_FIELDS = ("connection.type", "connection.interface-name", "vlan.parent", "vlan.id",
             "ipv4.method", "ipv4.addresses", "connection.autoconnect")


def parse_nm_connection(result: FactResult) -> dict[str, str] | None:
    """`nmcli -t -g FIELDS connection show NAME` -> {field: value}; None: no such profile."""
    if not result.ok:
        return None
    values = (line.strip() for line in result.out.splitlines())
    return dict(zip(NM_FIELDS, values, strict=False))


def nm_connection(name: str) -> Fact[dict[str, str] | None]:
    """A NetworkManager connection profile's settings that a VLAN profile sets."""
    return Fact(f"nm connection {name}",
                f"nmcli -t -g {','.join(NM_FIELDS)} connection show {shlex.quote(name)}",
                parse_nm_connection)


class NmConnection(Step):
    """Ensure a NetworkManager VLAN connection profile named like the interface."""

    def __init__(self, name: str, parent: str, vlan_id: int, address: str) -> None:
        self.con, self.parent, self.vlan_id, self.address = name, parent, vlan_id, address
        self.name = f"Ensure NetworkManager connection {name} (VLAN {vlan_id} on {parent})"

    def wanted(self) -> dict[str, str]:
        return {"connection.type": "vlan", "connection.interface-name": self.con,
                "vlan.parent": self.parent, "vlan.id": str(self.vlan_id),
                "ipv4.method": "manual", "ipv4.addresses": self.address,
                "connection.autoconnect": "yes"}

    def facts(self) -> Mapping[str, str]:
        return {"con": nm_connection(self.con).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        q = shlex.quote
        current = nm_connection(self.con).read(facts, "con")
        wanted = self.wanted()
        if current is None:
            settings = " ".join(f"{k} {q(v)}" for k, v in wanted.items()
                                if k not in ("connection.type", "connection.interface-name"))
            return [Change(f"add NetworkManager connection {self.con}", (Action(
                f"nmcli connection add type vlan con-name {q(self.con)} "
                f"ifname {q(self.con)} {settings}"),))]
        if current.get("connection.type", "vlan") not in ("vlan", ""):
            raise StepFailed(
                f"NetworkManager connection {self.con!r} exists with type "
                f"{current['connection.type']}, not vlan: rename or delete it "
                f"(nmcli connection delete {self.con}) and run again")
        differ = {k: v for k, v in wanted.items() if current.get(k) != v}
        if not differ:
            return []
        settings = " ".join(f"{k} {q(v)}" for k, v in differ.items())
        was = ", ".join(f"{k}={current.get(k) or '-'}" for k in differ)
        return [Change(f"modify NetworkManager connection {self.con} (was {was})",
                       (Action(f"nmcli connection modify {q(self.con)} {settings}"),))]


def nmcli_steps(name: str, parent: str, vlan_id: int, address: str, create: bool,
                facts: Mapping[str, FactResult]) -> list[Step]:
    """A NetworkManager profile (persisted by NetworkManager), activated with `nmcli up`."""
    return [
        NmConnection(name, parent, vlan_id, address),
        LinkState(name, parent, vlan_id, _iface(address),
                  apply=f"nmcli connection up {shlex.quote(name)}"),
    ]


def netplan_defines(files: Mapping[str, str], interface: str) -> bool:
    """True when a netplan file declares `interface` (as an ethernet, bond, bridge, ...)."""
    for text in files.values():
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            continue
        network = data.get("network") if isinstance(data, dict) else None
        if not isinstance(network, dict):
            continue
        for section, entries in network.items():
            if section != "version" and isinstance(entries, dict) and interface in entries:
                return True
    return False


def netplan_steps(name: str, parent: str, vlan_id: int, address: str, create: bool,
                  facts: Mapping[str, FactResult]) -> list[Step]:
    """A `vlans:` entry in /etc/netplan/60-greenroom-<name>.yaml, applied with netplan."""
    files = NETPLAN.read(facts)
    path = f"/etc/netplan/60-greenroom-{name}.yaml"
    if not netplan_defines({p: t for p, t in files.items() if p != path}, parent):
        raise StepFailed(
            f"netplan does not declare {parent}, the VLAN's parent, in /etc/netplan/*.yaml; "
            f"declare it there (e.g. ethernets: {{{parent}: {{dhcp4: true}}}}) so netplan can "
            "link the VLAN to it, then run again")
    content = render("common/netplan-vlan.yaml.j2", runbook="vlan", ifname=name,
                     parent=parent, vlan_id=vlan_id, address=address)
    return [
        File(path, content, mode="600"),
        LinkState(name, parent, vlan_id, _iface(address),
                  apply="netplan generate && netplan apply"),
    ]


def ensure_interfaces_d(content: str | None) -> str | None:
    """/etc/network/interfaces with interfaces.d sourced (left alone when it already is)."""
    lines = (content or "").splitlines()
    if any(re.match(r"\s*source(-directory)?\s+/etc/network/interfaces\.d", ln)
           for ln in lines):
        return content
    return "\n".join([*lines, "source /etc/network/interfaces.d/*"]) + "\n"


def ifupdown_steps(name: str, parent: str, vlan_id: int, address: str, create: bool,
                   facts: Mapping[str, FactResult]) -> list[Step]:
    """A stanza in /etc/network/interfaces.d, brought up with ifup."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)  # source-directory skips names with dots
    content = render("common/ifupdown-vlan.j2", runbook="vlan", ifname=name,
                     parent=parent, vlan_id=vlan_id, address=address)
    q = shlex.quote(name)
    return [
        Edit("/etc/network/interfaces", ensure_interfaces_d,
             name="Ensure /etc/network/interfaces sources interfaces.d"),
        File(f"/etc/network/interfaces.d/greenroom-{safe}", content),
        LinkState(name, parent, vlan_id, _iface(address),
                  apply=f"ifdown --force {q} 2>/dev/null; ifup {q}"),
    ]


def _iface(address: str) -> IPv4Interface:
    return IPv4Interface(address)


Builder = Callable[[str, str, int, str, bool, Mapping[str, FactResult]], list[Step]]
BUILDERS: dict[str, Builder] = {
    "nmcli": nmcli_steps, "netplan": netplan_steps, "ifupdown": ifupdown_steps,
    "iproute2": iproute2_steps,
}
