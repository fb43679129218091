"""Build the pi-prep Plan for one board from its facts and the inventory.

Order: kernel arguments (and config.txt), swap off and staying off, packages, kernel modules
and sysctls, containerd config and service, optional iptables-legacy / Kubernetes apt repo /
host name, then the reboot check. Handlers run in this order at the end: update-grub,
restart containerd, reboot.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import TYPE_CHECKING

from runbooks.common.containerd import CERTS_DIR, ContainerdConfig, registry_hosts_steps
from runbooks.common.kernel import KernelModule, Sysctl
from runbooks.common.reboot import RebootRequested
from runbooks.common.vlan import vlan_facts, vlan_steps
from runbooks.core.runner import Runbook
from runbooks.core.steps import (
    Command,
    File,
    Handler,
    LineInFile,
    Packages,
    Plan,
    Service,
    StepFailed,
)
from runbooks.pi_prep.cmdline import cmdline_txt_step
from runbooks.pi_prep.configtxt import config_txt_step
from runbooks.pi_prep.facts import FACT_COMMANDS, BoardFacts, parse_board_facts
from runbooks.pi_prep.fstab import fstab_step
from runbooks.pi_prep.grub import UPDATE_GRUB, grub_default_step
from runbooks.pi_prep.kubernetes import kubernetes_steps
from runbooks.pi_prep.reboot import RebootPending, reboot_handler
from runbooks.pi_prep.settings import PiPrepSettings, load_settings
from runbooks.pi_prep.swap import Purged, SwapOff, VerifySwapOff, dphys_swapfile_steps
from runbooks.pi_prep.timesync import RESTART as RESTART_CHRONY
from runbooks.pi_prep.timesync import timesync_steps

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

MODULES_FILE = "/etc/modules-load.d/k8s.conf"
SYSCTL_FILE = "/etc/sysctl.d/k8s.conf"
MODULES = ("overlay", "br_netfilter")
SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
           "net.ipv4.ip_forward")
BASE_PACKAGES = ("containerd", "containernetworking-plugins", "chrony")


def packages_for(facts: BoardFacts, settings: PiPrepSettings) -> list[str]:
    """The apt packages a board needs: runtime, CNI plugins, chrony, and board extras."""
    names = list(BASE_PACKAGES)
    if facts.os.family == "ubuntu" and facts.board.kind == "raspberrypi":
        names.append("linux-modules-extra-raspi")  # vxlan for flannel
    if settings.rng_tools:
        names.append("rng-tools-debian")
    return names


def check_board(ctx: HostContext, facts: BoardFacts) -> None:
    """Refuse a board whose device tree contradicts the inventory's `board:`."""
    wanted = ctx.host.board
    found = facts.board.kind
    if wanted and found not in ("unknown", "other") and wanted != found:
        raise StepFailed(
            f"{ctx.inventory.path}: hosts.{ctx.host.name}.board is {wanted!r} but the board "
            f"says it is a {facts.board.model!r} ({found}): fix the inventory or check that "
            f"{ctx.host.address} is the board you meant")


def build_plan(ctx: HostContext) -> Plan:
    """The plan for one board (raises StepFailed for bad vars or missing boot files)."""
    settings = load_settings(ctx.inventory, ctx.host)
    # one round trip for the board's facts and, when it sits on the VLAN, its network's
    wanted = dict(FACT_COMMANDS)
    if ctx.host.vlan is not None:
        wanted.update(vlan_facts(ctx.host))
    raw = ctx.gather(wanted)
    try:
        facts = parse_board_facts({k: raw[k] for k in FACT_COMMANDS})
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    ctx.log(f"facts: {facts.summary()}")
    check_board(ctx, facts)
    plan = Plan()
    if facts.boot == "grub":
        plan.add(grub_default_step(facts.cmdline_path))
        plan.handler(UPDATE_GRUB)
    else:
        plan.add(cmdline_txt_step(facts.cmdline_path))
    if settings.overclock or settings.overlays:
        if facts.boot == "grub":
            ctx.log("WARNING: vars.overclock is for Raspberry Pi config.txt; this board boots "
                    "with GRUB, so it is skipped")
        else:
            config = posixpath.join(posixpath.dirname(facts.cmdline_path), "config.txt")
            plan.add(config_txt_step(config, settings.overclock, settings.overlays))

    if ctx.host.vlan is not None:
        # the board's VLAN address, the same way the gateway gets its own
        plan.add(*vlan_steps(ctx.host, ctx.inventory, raw))

    if "dphys-swapfile" in facts.swap_packages:
        plan.add(*dphys_swapfile_steps())
    zram = [p for p in facts.swap_packages if p != "dphys-swapfile"]
    if zram:
        plan.add(Purged(zram, "zram swap"))
    plan.add(SwapOff(), fstab_step(), VerifySwapOff())

    plan.add(Packages(packages_for(facts, settings)))
    plan.add(*timesync_steps(ctx.inventory))  # chrony follows the gateway
    plan.add(*(KernelModule(m, file=MODULES_FILE) for m in MODULES))
    plan.add(*(Sysctl(key, 1, file=SYSCTL_FILE) for key in SYSCTLS))
    plan.add(ContainerdConfig(kubernetes=True, sandbox_image=settings.sandbox_image))
    if settings.registry:
        plan.add(*registry_hosts_steps(CERTS_DIR, settings.registry))
    plan.add(Service("containerd", enabled=True, running=True))

    if settings.iptables_legacy:
        for tool in ("iptables", "ip6tables"):
            target = f"/usr/sbin/{tool}-legacy"
            plan.add(Command(f"Ensure {tool} uses the legacy backend",
                             f"update-alternatives --set {tool} {target}",
                             unless=f"update-alternatives --query {tool} | "
                                    f"grep -qx 'Value: {target}'"))
    if settings.kubernetes:
        plan.add(*kubernetes_steps(*settings.kubernetes))
    if settings.hostname:
        name = settings.hostname
        plan.add(File("/etc/hostname", name + "\n"),
                 LineInFile("/etc/hosts", f"127.0.1.1\t{name}", match="127.0.1.1"),
                 Command(f"Ensure the running host name is {name}",
                         f"hostname {shlex.quote(name)}",
                         unless=f"[ \"$(hostname)\" = {shlex.quote(name)} ]"))

    if ctx.options.get("reboot"):
        plan.add(RebootRequested())
    plan.add(RebootPending())
    plan.handler(Handler.restart("containerd"), RESTART_CHRONY,
                 reboot_handler(facts.cmdline_path))
    return plan


RUNBOOK = Runbook("pi-prep", ("pi",), build_plan)
