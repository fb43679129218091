"""xen-dom0: a Debian host made into a Xen dom0 with private bridges, DHCP and port forwards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from invoke import Collection, Context

from runbooks.common.reboot_options import REBOOT_OPTIONS
from runbooks.core.cli import load_inventory_or_exit, runbook_task, task

if TYPE_CHECKING:
    from runbooks.core.facts import FactResult
    from runbooks.core.inventory import Host, Inventory
    from runbooks.xen_dom0.settings import XenSettings

HOST_HELP = "dom0 hosts to read: names or roles, comma separated (default: role xen-dom0)."

converge = runbook_task(
    "runbooks.xen_dom0.plan:RUNBOOK",
    """Make hosts with role xen-dom0 Xen hosts: hypervisor, GRUB, bridges, DHCP, NAT.

    Installs the release's Xen packages, writes /etc/default/grub.d/xen.cfg (update-grub
    runs when it changed), the bridges' ifupdown stanzas (checked with `ifup --no-act`,
    brought up with ifup), one dnsmasq instance per private bridge (each file checked with
    `dnsmasq --test`), forwarding, masquerade and port forwards, xendomains without
    save/restore and xl.conf's default bridge; reboots only when Xen does not run with the
    wanted command line, then checks `xl info`.
    """,
    name="converge",
    default=True,
    extra=REBOOT_OPTIONS,
)


def _settings(inv: Inventory, host: Host) -> XenSettings:
    from runbooks.xen_dom0.settings import read_settings

    return read_settings(inv.site, host.name, dict(host.vars))


@task(shared=("inventory",), help={
            "host": HOST_HELP,
            "json": "Print the leases as JSON (a list of objects) for scripts."})
def leases(c: Context, inventory: str | None = None, host: str | None = None,
           json_: bool = False) -> None:
    """List the guests' DHCP leases per private bridge: bridge, IP, MAC, hostname, expiry.

    Read from each dnsmasq instance's lease file (/var/lib/dnsmasq/<bridge>/leases).
    """
    from runbooks.core.readonly import Reading, read_hosts, report, unreadable
    from runbooks.xen_dom0.health import format_leases, lease_facts, lease_file, parse_leases
    from runbooks.xen_dom0.plan import RUNBOOK

    def judge(target: Host, facts: Mapping[str, FactResult]) -> Reading:
        found, notes = [], []
        for bridge in _settings(inv, target).private:
            text = lease_file(bridge.name).read(facts, f"leases/{bridge.name}")
            if text is None:
                notes.append(f"{target.name}: no lease file for {bridge.name}: run "
                             "`inv xen-dom0`")
                continue
            found += parse_leases(bridge.name, text)
        return Reading(not notes, [lease.as_json() for lease in found],
                       f"{target.name}: {len(found)} lease(s)\n{format_leases(found)}",
                       tuple(notes))

    inv = load_inventory_or_exit(c, inventory)
    report(read_hosts(inv, RUNBOOK, host, lambda target: lease_facts(_settings(inv, target))),
           judge, unreadable, json_=json_, unwrap_single=True)


@task(shared=("inventory",), help={"host": HOST_HELP,
                                   "json": "Print the checks as JSON for scripts."})
def check(c: Context, inventory: str | None = None, host: str | None = None,
          json_: bool = False) -> None:
    """Read-only health of each dom0; exits 1 when anything is unhealthy.

    Checks: Xen runs (`xl info`), bridges up with their addresses, each dnsmasq instance
    running and listening (DHCP, DNS on the bridge), leases and reservations (with the MACs
    to give the guests), forwarding, masquerade and every port forward present.
    """
    from runbooks.core.readonly import health_report, read_hosts
    from runbooks.xen_dom0.health import evaluate, format_checks, health_facts
    from runbooks.xen_dom0.plan import RUNBOOK

    inv = load_inventory_or_exit(c, inventory)
    health_report(read_hosts(inv, RUNBOOK, host,
                             lambda target: health_facts(_settings(inv, target))),
                  lambda target, facts: evaluate(_settings(inv, target), facts), format_checks,
                  json_=json_)


ns = Collection("xen-dom0")
ns.add_task(converge, default=True)
ns.add_task(leases)
ns.add_task(check)
