"""Read a network interface's live state (`ip -d -j addr show dev NAME`) and converge it.

`LinkState` is the live half of every VLAN backend: it checks that the interface exists,
is what we expect (a VLAN with the right id and parent, or a link provided from elsewhere),
carries the wanted address and is up. What it runs to fix a difference depends on the
backend: plain `ip` commands, or the backend's own activation (`nmcli connection up`,
`netplan apply`, `ifup`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Interface

from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed


def parse_ipv4_addresses(result: FactResult) -> tuple[tuple[str, IPv4Interface], ...]:
    """`ip -o -4 addr show` -> (interface, address) for every IPv4 address, in its order."""
    if not result.ok:
        return ()
    found = []
    for line in result.out.splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] == "inet":
            try:
                found.append((words[1], IPv4Interface(words[3])))
            except ValueError:
                continue
    return tuple(found)


# Every IPv4 address on the host's interfaces (the registry's listen address, the interface
# greenroom's own SSH session arrives on)
IPV4_ADDRESSES: Fact[tuple[tuple[str, IPv4Interface], ...]] = Fact(
    "ipv4_addresses", "ip -o -4 addr show", parse_ipv4_addresses)


def link_command(name: str) -> str:
    """The fact command describing one interface (exits non-zero when it does not exist)."""
    return f"ip -d -j addr show dev {shlex.quote(name)}"


@dataclass(frozen=True)
class LinkInfo:
    """What `ip -d -j addr show dev NAME` says about one interface."""

    name: str
    exists: bool
    kind: str | None = None  # "vlan", "veth", "tun", ...; None for a physical NIC
    vlan_id: int | None = None
    parent: str | None = None
    up: bool = False  # administratively up (flag UP)
    operstate: str = "DOWN"
    addresses: tuple[IPv4Interface, ...] = ()
    master: str | None = None  # the bridge (or bond) this interface is a port of


def parse_link(name: str, result: FactResult) -> LinkInfo:
    """Parse the fact of `link_command(name)`; a missing interface gives exists=False."""
    if not result.ok or not result.out.strip():
        return LinkInfo(name, exists=False)
    try:
        data = json.loads(result.out)
    except ValueError as exc:
        raise StepFailed(f"cannot read `ip -j` output for {name}: {exc}") from exc
    entry = next((e for e in data if e.get("ifname") == name), None)
    if entry is None:
        return LinkInfo(name, exists=False)
    linkinfo = entry.get("linkinfo") or {}
    kind = linkinfo.get("info_kind")
    vlan_id = (linkinfo.get("info_data") or {}).get("id") if kind == "vlan" else None
    addresses = tuple(
        IPv4Interface(f"{a['local']}/{a['prefixlen']}")
        for a in entry.get("addr_info", ())
        if a.get("family") == "inet" and "local" in a
    )
    return LinkInfo(
        name=name, exists=True, kind=kind, vlan_id=vlan_id, parent=entry.get("link"),
        up="UP" in entry.get("flags", ()), operstate=str(entry.get("operstate", "UNKNOWN")),
        addresses=addresses, master=entry.get("master"),
    )


class LinkState(Step):
    """Ensure interface NAME exists (a VLAN id N on PARENT), has ADDRESS and is up.

    `create`: the interface may be created (False for a link provided from elsewhere).
    `manage`: False means only check (vlan.managed false): any difference is an error.
    `apply`: the backend's activation command; None means fix with plain `ip` commands.
    """

    def __init__(self, name: str, parent: str | None, vlan_id: int, address: IPv4Interface,
                 *, create: bool = True, manage: bool = True, apply: str | None = None) -> None:
        self.link, self.parent, self.vlan_id, self.address = name, parent, vlan_id, address
        self.create, self.manage, self.apply = create, manage, apply
        verb = "Ensure" if manage else "Check"
        self.name = f"{verb} interface {name} is up with {address}"

    def facts(self) -> Mapping[str, str]:
        return {"link": link_command(self.link)}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        info = parse_link(self.link, facts["link"])
        problems = self.problems(info)
        if not problems:
            return []
        if not self.manage:
            raise StepFailed(
                f"{self.link}: {'; '.join(problems)}. vlan.managed is false, so greenroom "
                "only checks this interface: configure it where it is provided, or set "
                "vlan.managed: true in the inventory")
        if not info.exists and not self.create:
            raise StepFailed(f"{self.link} does not exist and greenroom may not create it")
        if self.apply is not None:
            return [Change("; ".join(problems), (Action(self.apply),))]
        return [Change(problem, (Action(command),))
                for problem, command in self._ip_fixes(info, problems)]

    def problems(self, info: LinkInfo) -> list[str]:
        """What differs from the wanted state, in words (empty when converged)."""
        if not info.exists:
            what = f"VLAN {self.vlan_id} on {self.parent}" if self.create else "interface"
            return [f"create {what} {self.link} with {self.address}"]
        if info.kind == "vlan" and (info.vlan_id != self.vlan_id
                                    or (self.parent and info.parent != self.parent)):
            raise StepFailed(
                f"{self.link} exists as VLAN {info.vlan_id} on {info.parent}, but the inventory "
                f"wants VLAN {self.vlan_id} on {self.parent}: remove it (ip link delete "
                f"{self.link}) or fix hosts.<host>.vlan in the inventory")
        found: list[str] = []
        if self.address not in info.addresses:
            have = ", ".join(str(a) for a in info.addresses) or "no IPv4 address"
            found.append(f"add {self.address} to {self.link} (has {have})")
        if not info.up:
            found.append(f"bring {self.link} up")
        return found

    def _ip_fixes(self, info: LinkInfo, problems: list[str]) -> list[tuple[str, str]]:
        q = shlex.quote
        link, address = q(self.link), q(str(self.address))
        if not info.exists:
            return [(problems[0], " && ".join([
                f"ip link add link {q(self.parent or '')} name {link} type vlan "
                f"id {int(self.vlan_id)}",
                f"ip addr replace {address} dev {link}",
                f"ip link set dev {link} up"]))]
        fixes = []
        for problem in problems:
            if problem.startswith("add "):
                fixes.append((problem, f"ip addr replace {address} dev {link}"))
            else:
                fixes.append((problem, f"ip link set dev {link} up"))
        return fixes
