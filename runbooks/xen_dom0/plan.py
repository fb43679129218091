"""The xen-dom0 runbook: a Debian host made into a Xen dom0 for Kubernetes guests.

Packages for the host's release, GRUB's Xen drop-in (update-grub as a handler, an old
20_linux_xen divert removed), ifupdown bridges validated with `ifup --no-act` and brought
up by ifup, one dnsmasq instance per private bridge (each file checked by `dnsmasq --test`),
forwarding, masquerade and port forwards (runbooks.common.nat), xendomains without
save/restore, xl.conf's default bridge, and a reboot only when Xen is not running with the
wanted command line (runbooks.common.reboot; `xl info` is checked after it).
"""

from __future__ import annotations

import re
import shlex
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from runbooks.common.facts import ARCHITECTURE, succeeded
from runbooks.common.links import IPV4_ADDRESSES, parse_ipv4_addresses
from runbooks.common.nat import FIREWALLD_RUNNING, Nat, PortForward, nat_steps
from runbooks.common.reboot import RebootRequested, reboot_handler
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import (
    Command,
    Directory,
    File,
    Handler,
    LineInFile,
    Packages,
    Plan,
    Service,
    Step,
    StepFailed,
)
from runbooks.core.templates import managed_from
from runbooks.xen_dom0 import render
from runbooks.xen_dom0.settings import XenSettings, read_settings, stable_mac
from runbooks.xen_dom0.steps import XL_INFO, BridgeUp, DnsmasqTemplate, Toolstack, XenBooted

if TYPE_CHECKING:
    from runbooks.core.context import HostContext
    from runbooks.core.inventory import Host

ROLE = "xen-dom0"
DIVERTED = "/etc/grub.d/20_linux_xen"
# the dummy kernel module is loaded, built in, or there to load (the private bridges' ports)
DUMMY_MODULE: Fact[bool] = Fact(
    "dummy module available",
    "[ -d /sys/module/dummy ] || grep -qs '/dummy\\.ko' "
    "/lib/modules/$(uname -r)/modules.builtin || modinfo dummy >/dev/null 2>&1", succeeded)
FACTS = {
    "xen.arch": ARCHITECTURE.command,
    "xen.dummy": DUMMY_MODULE.command,
    "xen.addrs": IPV4_ADDRESSES.command,
    "xen.firewalld": FIREWALLD_RUNNING.command,
}
ARCHES = ("amd64", "arm64")


def settings_of(ctx: HostContext) -> XenSettings:
    return read_settings(ctx.inventory.site, ctx.host.name, dict(ctx.host.vars))


def ssh_interface(host: Host, addrs: FactResult) -> str | None:
    """The interface holding the address greenroom reaches the host at (None: unknown)."""
    return next((name for name, address in parse_ipv4_addresses(addrs)
                 if str(address.ip) == host.address), None)


def packages(arch_fact: FactResult) -> list[str]:
    """The hypervisor packages of the host's architecture."""
    arch = ARCHITECTURE.parse(arch_fact)
    if arch not in ARCHES:
        raise StepFailed(f"Xen packages exist for {', '.join(ARCHES)} only, this host is "
                         f"{arch or 'unknown'}; remove role xen-dom0 from it")
    return [f"xen-system-{arch}"]


def _table_name(bridge: str) -> str:
    return "greenroom_xen_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def nat_for(host: Host, settings: XenSettings, firewalld: bool, source: str) -> list[Step]:
    """Forwarding, masquerade and port forwards for each private bridge (common NAT)."""
    if not settings.private or not (settings.masquerade or settings.forwards):
        return []
    upstream = settings.public.name if settings.public else host.upstream
    if not upstream:
        raise StepFailed(f"hosts.{host.name}: masquerade and port forwards need a way out; "
                         "set vars.public_bridge or the host's upstream interface")
    steps: list[Step] = []
    for bridge in settings.private:
        subnet = bridge.address.network
        forwards = tuple(PortForward(f.protocol, f.port, f.to, f.to_port)
                         for f in settings.forwards if f.to in subnet)
        nat = Nat(inside=bridge.name, upstream=upstream, subnet=subnet, forwards=forwards,
                  name=_table_name(bridge.name), masquerade=settings.masquerade)
        steps += nat_steps(nat, firewalld=firewalld, source=source, runbook=ROLE,
                           description=f"guests on {bridge.name} ({subnet}) out of {upstream}")
    return steps


def cross_check(host: Host, settings: XenSettings) -> None:
    """What the vars schema cannot see across its keys (or with the host's SSH port)."""
    names = [b.name for b in settings.private]
    if settings.public and settings.public.name in names:
        raise StepFailed(f"hosts.{host.name}.vars: {settings.public.name} is both the public "
                         "and a private bridge; give them different names")
    for forward in settings.forwards:
        if forward.protocol == "tcp" and forward.port == host.port:
            raise StepFailed(f"hosts.{host.name}.vars.port_forwards: tcp port {forward.port} "
                             "is the port greenroom's SSH uses; forward another one")
        if not any(forward.to in b.address.network for b in settings.private):
            raise StepFailed(f"hosts.{host.name}.vars.port_forwards: {forward.to} is on no "
                             "private bridge of this host")


def dnsmasq_steps(settings: XenSettings, source: str) -> list[Step]:
    """One dnsmasq instance per private bridge, the machine-wide one disabled."""
    steps: list[Step] = [
        DnsmasqTemplate(render.dnsmasq_template_unit(source), notify=("daemon-reload",)),
        Service("dnsmasq.service", enabled=False, running=False),
    ]
    for bridge in settings.private:
        folder = f"{render.DNSMASQ_BASE}/{bridge.name}"
        unit = f"dnsmasq@{bridge.name}.service"
        hosts_check = ("dnsmasq --test --conf-file=/dev/null "
                       "$(sed -n 's/^\\(..*\\)$/--dhcp-host=\\1/p' {})")
        steps += [
            Directory(folder),
            File(f"{folder}/hostsfile", render.hostsfile(bridge), validate=hosts_check,
                 notify=(f"reload {unit}",)),
            File(f"{folder}/dnsmasq.conf", render.dnsmasq_conf(bridge, source),
                 validate="dnsmasq --test --conf-file={}", notify=(f"restart {unit}",)),
            Command(f"Ensure {folder}/leases exists", f"touch {shlex.quote(folder)}/leases",
                    unless=f"test -e {shlex.quote(folder)}/leases"),
            File(f"/etc/default/dnsmasq.{bridge.name}",
                 render.dnsmasq_default(bridge.name, source), notify=(f"restart {unit}",)),
            Service(unit, enabled=True, running=True),
        ]
    return steps


def xen_checked(settings: XenSettings):  # noqa: ANN201
    """The post-reboot check: `xl info` answers (with our command line) where Xen runs."""
    def verify(ctx: HostContext) -> None:
        if not settings.xen_default:
            return
        done = ctx.run(XL_INFO.command)
        info = XL_INFO.parse(FactResult(0 if done.ok else 1, str(done.stdout)))
        if info is None:
            raise StepFailed("after the reboot `xl info` does not answer, so the host did not "
                             "boot into Xen; look at GRUB's menu from the console")
        running = info.get("xen_commandline", "")
        wanted = render.xen_cmdline(settings)
        if any(word not in running.split() for word in wanted.split()):
            raise StepFailed(f"after the reboot Xen runs with {running!r}, not {wanted!r}; "
                             "check /etc/default/grub.d/xen.cfg and update-grub's output")
    return verify


def xen_plan(ctx: HostContext) -> Plan:
    """The dom0's steps, in order; handlers update-grub, dnsmasq restarts, reboot."""
    host, inventory = ctx.host, ctx.inventory
    settings = settings_of(ctx)
    source = managed_from(inventory)
    facts = ctx.gather(FACTS)
    cross_check(host, settings)
    has_dummy = DUMMY_MODULE.read(facts, "xen.dummy")
    ssh_if = ssh_interface(host, facts["xen.addrs"])
    macs = {b.name: stable_mac(inventory.site, host.name, b.name, "dummy")
            for b in settings.private}
    plan = Plan()
    plan.add(
        Packages([*packages(facts["xen.arch"]), "ifupdown", "bridge-utils", "dnsmasq"]),
        Command(f"Ensure no old dpkg-divert of {DIVERTED}",
                f"dpkg-divert --rename --remove {DIVERTED}",
                only_if=f"dpkg-divert --list {DIVERTED} | grep -q .", notify=("update-grub",)),
        File(render.GRUB_XEN, render.grub_xen_cfg(settings, source), validate="sh -n {}",
             notify=("update-grub",)),
        Toolstack(),
        LineInFile("/etc/default/xendomains", "XENDOMAINS_SAVE=", match="XENDOMAINS_SAVE="),
        LineInFile("/etc/default/xendomains", "XENDOMAINS_RESTORE=false",
                   match="XENDOMAINS_RESTORE="),
    )
    if settings.default_bridge:
        plan.add(LineInFile("/etc/xen/xl.conf",
                            f'vif.default.bridge="{settings.default_bridge}"',
                            match="vif.default.bridge="))
    if settings.dom0.memory:
        plan.add(LineInFile("/etc/xen/xl.conf", 'autoballoon="off"', match="autoballoon="))
    plan.add(
        LineInFile("/etc/network/interfaces", "source /etc/network/interfaces.d/*",
                   match="source /etc/network/interfaces.d/"),
        File(render.INTERFACES, render.interfaces(settings, source, has_dummy, macs),
             validate="ifup --no-act --interfaces={} --all"),
    )
    if settings.public:
        public = settings.public
        plan.add(BridgeUp(public.name, public.address, public.nic,
                          ssh_port=ssh_if == public.nic))
    for bridge in settings.private:
        plan.add(BridgeUp(bridge.name, bridge.address))
    plan.add(*dnsmasq_steps(settings, source))
    plan.add(*nat_for(host, settings, FIREWALLD_RUNNING.read(facts, "xen.firewalld"), source))
    if settings.xen_default:
        plan.add(XenBooted(render.xen_cmdline(settings)))
    if ctx.options.get("reboot"):
        plan.add(RebootRequested())
    plan.handler(Handler("daemon-reload", "systemctl daemon-reload"))
    for bridge in settings.private:
        unit = f"dnsmasq@{bridge.name}.service"
        plan.handler(Handler(f"restart {unit}", f"systemctl restart {unit}"),
                     Handler(f"reload {unit}", f"systemctl reload-or-restart {unit}"))
    plan.handler(Handler("update-grub", "update-grub"),
                 reboot_handler(verify=xen_checked(settings),
                                rerun="inv xen-dom0"))
    return plan


def gateway_addresses(settings: XenSettings) -> list[IPv4Address]:
    """dom0's own address on each private bridge (the guests' router)."""
    return [b.address.ip for b in settings.private]


RUNBOOK = Runbook("xen-dom0", (ROLE,), xen_plan)
