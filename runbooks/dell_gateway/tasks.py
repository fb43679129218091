"""dell-gateway: the gateway's VLAN interface, DHCP server and NAT; its leases and health."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from invoke import Collection, Context

from runbooks.core.cli import load_inventory_or_exit, runbook_task, task

if TYPE_CHECKING:
    from runbooks.core.facts import FactResult
    from runbooks.core.inventory import Host

HOST_HELP = "Gateway hosts to read: names or roles, comma separated (default: role gateway)."

converge = runbook_task(
    "runbooks.dell_gateway.plan:RUNBOOK",
    """Make the gateway serve the lab's VLAN: interface, DHCP pool and NAT to upstream.

    Creates the VLAN interface with the host's own network tool (NetworkManager, netplan,
    ifupdown or iproute2 plus a systemd unit), installs isc-dhcp-server with a dhcpd.conf
    validated by `dhcpd -t` before it is used, and masquerades the VLAN subnet out of the
    upstream interface (firewalld direct rules, or greenroom's own nftables table).
    """,
    name="converge",
    default=True,
)


@task(shared=("inventory",), help={
            "host": HOST_HELP,
            "json": "Print the leases as JSON (a list of objects) for scripts.",
            "all": "Also list leases that are not active now (free, expired, released, ...)."})
def leases(c: Context, inventory: str | None = None, host: str | None = None,
           json_: bool = False, all_: bool = False) -> None:
    """List the DHCP leases of the gateway: IP, MAC, hostname, start, end, state.

    Read from the lease database (/var/lib/dhcp/dhcpd.leases); the latest entry per IP
    counts, as with dhcp-lease-list. Only active leases unless --all.
    """
    from runbooks.core.readonly import Reading, read_hosts, report, unreadable
    from runbooks.dell_gateway.dhcp import LEASE_DATABASE, LEASES
    from runbooks.dell_gateway.leases import active_leases, format_table, parse_leases
    from runbooks.dell_gateway.plan import RUNBOOK

    def judge(target: Host, facts: Mapping[str, FactResult]) -> Reading:
        text = LEASE_DATABASE.read(facts, "leases")
        if text is None:
            return Reading(False, notes=(f"{target.name}: cannot read {LEASES}: is "
                                         "isc-dhcp-server installed? (run `inv dell-gateway`)",))
        found = parse_leases(text)
        shown = found if all_ else active_leases(found)
        return Reading(True, [lease.as_json() for lease in shown],
                       f"{target.name}: {len(shown)} lease(s){'' if all_ else ' active'}\n"
                       + format_table(shown))

    inv = load_inventory_or_exit(c, inventory)
    report(read_hosts(inv, RUNBOOK, host, lambda _h: {"leases": LEASE_DATABASE.command}),
           judge, unreadable, json_=json_, unwrap_single=True)


@task(shared=("inventory",), help={"host": HOST_HELP,
                                   "json": "Print the checks as JSON for scripts."})
def check(c: Context, inventory: str | None = None, host: str | None = None,
          json_: bool = False) -> None:
    """Read-only health of the gateway; exits non-zero when anything is unhealthy.

    Checks: the VLAN interface is up with its address, dhcpd runs and listens on it
    (UDP 67), forwarding is on, the masquerade rule is present, the pool has free addresses.
    """
    from runbooks.core.readonly import health_report, read_hosts
    from runbooks.dell_gateway.health import evaluate, format_checks, health_facts
    from runbooks.dell_gateway.plan import RUNBOOK

    inv = load_inventory_or_exit(c, inventory)
    health_report(read_hosts(inv, RUNBOOK, host, health_facts),
                  lambda target, facts: evaluate(target, inv, facts), format_checks, json_=json_)


ns = Collection("dell-gateway")
ns.add_task(converge, default=True)
ns.add_task(leases)
ns.add_task(check)
