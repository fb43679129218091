"""xen-dom0: a Debian host made into a Xen dom0 with private bridges, DHCP and port forwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, Exit

from runbooks.common.reboot_options import REBOOT_OPTIONS
from runbooks.core.cli import load_inventory_or_exit, runbook_task, task

if TYPE_CHECKING:
    from runbooks.core.facts import FactResult
    from runbooks.core.inventory import Host, Inventory
    from runbooks.xen_dom0.settings import XenSettings

INVENTORY_HELP = "Inventory file (default from invoke.yaml, else hosts/lab.yaml)."
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


def _read(inv: Inventory, host_spec: str | None,
          commands: Callable[[Host, XenSettings], Mapping[str, str]],
          ) -> list[tuple[Host, XenSettings, dict[str, FactResult] | str]]:
    """(host, settings, facts or an error text) for every selected dom0; changes nothing."""
    from runbooks.core.facts import gather
    from runbooks.core.runner import select_hosts
    from runbooks.core.session import Connector, HostUnreachable, SessionError
    from runbooks.xen_dom0.plan import RUNBOOK
    from runbooks.xen_dom0.settings import read_settings

    try:
        hosts = select_hosts(inv, RUNBOOK, host_spec)
        connector = Connector(inv)
    except Exception as exc:  # noqa: BLE001 - a bad --host or the lab not running
        raise Exit(f"{inv.path}: {exc}", code=2) from None
    if not hosts:
        raise Exit(f"{inv.path}: no host has role xen-dom0", code=2)
    out: list[tuple[Host, XenSettings, Any]] = []
    try:
        for host in hosts:
            settings = read_settings(inv.site, host.name, dict(host.vars))
            try:
                out.append((host, settings,
                            gather(connector.session(host), commands(host, settings))))
            except (HostUnreachable, SessionError) as exc:
                out.append((host, settings, f"unreachable: {exc}"))
    finally:
        connector.close_all()
    return out


@task(help={"inventory": INVENTORY_HELP, "host": HOST_HELP,
            "json": "Print the leases as JSON (a list of objects) for scripts."})
def leases(c: Context, inventory: str | None = None, host: str | None = None,
           json_: bool = False) -> None:
    """List the guests' DHCP leases per private bridge: bridge, IP, MAC, hostname, expiry.

    Read from each dnsmasq instance's lease file (/var/lib/dnsmasq/<bridge>/leases).
    """
    from runbooks.xen_dom0.health import format_leases, lease_facts, parse_leases

    inv = load_inventory_or_exit(c, inventory)
    failed = False
    out: dict[str, list[dict[str, object]]] = {}
    for target, settings, facts in _read(inv, host, lambda _h, s: lease_facts(s)):
        if isinstance(facts, str):
            print(f"{target.name}: {facts}")
            failed = True
            continue
        found = []
        for bridge in settings.private:
            fact = facts[f"leases/{bridge.name}"]
            if not fact.ok:
                print(f"{target.name}: no lease file for {bridge.name}: run `inv xen-dom0`")
                failed = True
                continue
            found += parse_leases(bridge.name, fact.out)
        out[target.name] = [lease.as_json() for lease in found]
        if not json_:
            print(f"{target.name}: {len(found)} lease(s)")
            print(format_leases(found))
    if json_:
        print(json.dumps(out if len(out) != 1 else next(iter(out.values())), indent=2))
    if failed:
        raise Exit(code=1)


@task(help={"inventory": INVENTORY_HELP, "host": HOST_HELP,
            "json": "Print the checks as JSON for scripts."})
def check(c: Context, inventory: str | None = None, host: str | None = None,
          json_: bool = False) -> None:
    """Read-only health of each dom0; exits 1 when anything is unhealthy.

    Checks: Xen runs (`xl info`), bridges up with their addresses, each dnsmasq instance
    running and listening (DHCP, DNS on the bridge), leases and reservations (with the MACs
    to give the guests), forwarding, masquerade and every port forward present.
    """
    from runbooks.xen_dom0.health import evaluate, format_checks, health_facts

    inv = load_inventory_or_exit(c, inventory)
    healthy = True
    report: dict[str, object] = {}
    for target, settings, facts in _read(inv, host, lambda _h, s: health_facts(s)):
        if isinstance(facts, str):
            print(f"{target.name}: UNHEALTHY: {facts}")
            report[target.name] = {"healthy": False, "error": facts}
            healthy = False
            continue
        checks = evaluate(settings, facts)
        ok = all(item.ok for item in checks)
        healthy &= ok
        report[target.name] = {"healthy": ok, "checks": [vars(item) for item in checks]}
        if not json_:
            print(format_checks(target.name, checks))
    if json_:
        print(json.dumps(report, indent=2))
    if not healthy:
        raise Exit(code=1)


ns = Collection("xen-dom0")
ns.add_task(converge, default=True)
ns.add_task(leases)
ns.add_task(check)
