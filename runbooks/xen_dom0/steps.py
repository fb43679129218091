"""xen-dom0's own steps: bridges brought up by ifupdown, the boot into Xen, the toolstack
setting where the release still reads it, and dnsmasq's instance template."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface

from runbooks.common.facts import succeeded
from runbooks.common.links import link_command, parse_link
from runbooks.core.facts import Fact, FactResult, file_command, parse_file
from runbooks.core.steps import Action, Change, File, LineInFile, Step, StepFailed

TOOLSTACK_READERS = "/usr/lib/xen-common/bin/xen-toolstack /etc/init.d/xen"
PACKAGE_TEMPLATE = "/lib/systemd/system/dnsmasq@.service"
OWN_TEMPLATE = "/etc/systemd/system/dnsmasq@.service"
MANAGED_MARK = "Managed by greenroom"  # in the header of files/xen_dom0/dnsmasq@.service.j2

# The release still reads TOOLSTACK (its toolstack script or init script names it)
TOOLSTACK_READ: Fact[bool] = Fact("toolstack read", f"grep -qs TOOLSTACK {TOOLSTACK_READERS}",
                                  succeeded)
# The dnsmasq package ships its own dnsmasq@.service (answered by the batch's one stat)
PACKAGE_SHIPS_TEMPLATE: Fact[bool] = Fact(
    "dnsmasq@ template shipped", file_command(PACKAGE_TEMPLATE),
    lambda result: parse_file(result).content is not None)


class BridgeUp(Step):
    """Ensure a bridge from our ifupdown stanzas is up with its address, brought up by
    `ifup`. A public bridge whose port carries greenroom's own SSH session is refused,
    with the way to do it from the console: moving the address would cut the session."""

    def __init__(self, name: str, address: IPv4Interface | None, port: str | None = None,
                 ssh_port: bool = False) -> None:
        self.bridge, self.address, self.port, self.ssh_port = name, address, port, ssh_port
        wanted = str(address) if address else "a DHCP address"
        self.name = f"Ensure bridge {name} is up with {wanted}"

    def facts(self) -> Mapping[str, str]:
        facts = {"link": link_command(self.bridge)}
        if self.port:
            facts["port"] = link_command(self.port)
        return facts

    def converged(self, facts: Mapping[str, FactResult]) -> bool:
        link = parse_link(self.bridge, facts["link"])
        has_address = (self.address in link.addresses if self.address
                       else bool(link.addresses))
        port_ok = (self.port is None
                   or parse_link(self.port, facts["port"]).master == self.bridge)
        return link.exists and link.kind == "bridge" and link.up and has_address and port_ok

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if self.converged(facts):
            return []
        q = shlex.quote
        if self.ssh_port:
            raise StepFailed(
                f"{self.port} carries this SSH session, so moving its address to "
                f"{self.bridge} now would cut it; the stanzas are written: from the "
                f"console run `ip addr flush dev {self.port} && ifup {self.bridge}` (or "
                "reboot), then run greenroom again")
        actions = []
        if self.port:
            actions.append(Action(f"ip -4 addr flush dev {q(self.port)}"))
        # ifupdown may remember the bridge as up although it is gone (a reset host)
        actions.append(Action(f"ifdown --force {q(self.bridge)} >/dev/null 2>&1; "
                              f"ifup {q(self.bridge)}"))
        return [Change(f"bring up {self.bridge} with ifup", tuple(actions))]


def parse_xl_info(out: str) -> dict[str, str]:
    """`xl info` -> {key: value}."""
    info = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


# `xl info` as {key: value}; None when Xen is not running (the command fails)
XL_INFO = Fact("xl_info", "xl info 2>&1",
               lambda result: parse_xl_info(result.out) if result.ok else None)


class XenBooted(Step):
    """Ensure the host runs Xen with the wanted command line; otherwise a reboot is due
    (notifies the reboot handler, which runs after update-grub)."""

    notify = ("reboot",)
    verify = False

    def __init__(self, cmdline: str) -> None:
        self.cmdline = cmdline
        self.name = "Ensure the host runs Xen with GRUB_CMDLINE_XEN_DEFAULT"

    def facts(self) -> Mapping[str, str]:
        return {"info": XL_INFO.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        info = XL_INFO.read(facts, "info")
        if info is None:
            return [Change("reboot into Xen (`xl info` does not answer: Xen is not running)",
                           reboot=True)]
        running = info.get("xen_commandline", "").split()
        missing = [word for word in self.cmdline.split() if word not in running]
        if missing:
            return [Change(f"reboot: Xen runs without {' '.join(missing)}", reboot=True)]
        return []


class Toolstack(Step):
    """Ensure TOOLSTACK=xl in /etc/default/xen, only where the release still reads it."""

    def __init__(self) -> None:
        self.name = "Ensure TOOLSTACK=xl where the release reads it"
        self._line = LineInFile("/etc/default/xen", "TOOLSTACK=xl", match="TOOLSTACK=")

    def facts(self) -> Mapping[str, str]:
        return {TOOLSTACK_READ.name: TOOLSTACK_READ.command, **self._line.facts()}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return self._line.plan(facts) if TOOLSTACK_READ.read(facts) else []


class DnsmasqTemplate(Step):
    """Ensure a dnsmasq@.service template: the package's where it ships one (ours is then
    removed), else the seed's, written to /etc/systemd/system."""

    def __init__(self, content: str, notify: Sequence[str] = ()) -> None:
        self.notify = tuple(notify)
        self._file = File(OWN_TEMPLATE, content)
        self.name = "Ensure a dnsmasq@.service template"

    def facts(self) -> Mapping[str, str]:
        # our own template is the File step's file: its content says whether it is ours
        return {PACKAGE_SHIPS_TEMPLATE.name: PACKAGE_SHIPS_TEMPLATE.command,
                **self._file.facts()}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not PACKAGE_SHIPS_TEMPLATE.read(facts):
            return self._file.plan(facts)
        if MANAGED_MARK in (parse_file(facts["file"]).content or ""):
            return [Change(f"remove {OWN_TEMPLATE}: the package ships {PACKAGE_TEMPLATE}",
                           (Action(f"rm -f {OWN_TEMPLATE} && systemctl daemon-reload"),))]
        return []
