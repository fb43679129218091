"""dell-gateway: the gateway's VLAN interface, DHCP server and NAT; its leases and health."""

from __future__ import annotations

import json

from invoke import Collection, Context, Exit

from runbooks.core.cli import load_inventory_or_exit, runbook_task, task

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
    from runbooks.dell_gateway.dhcp import LEASES
    from runbooks.dell_gateway.leases import active_leases, format_table, parse_leases
    from runbooks.dell_gateway.readonly import gateway_facts

    inv = load_inventory_or_exit(c, inventory)
    failed = False
    out: dict[str, list[dict[str, object]]] = {}
    from runbooks.dell_gateway.plan import RUNBOOK

    for target, facts in gateway_facts(inv, RUNBOOK, host, lambda _h: {"leases": f"cat {LEASES}"}):
        if isinstance(facts, str):
            print(f"{target.name}: {facts}")
            failed = True
            continue
        if not facts["leases"].ok:
            print(f"{target.name}: cannot read {LEASES}: is isc-dhcp-server installed? "
                  "(run `inv dell-gateway`)")
            failed = True
            continue
        found = parse_leases(facts["leases"].out)
        shown = found if all_ else active_leases(found)
        out[target.name] = [lease.as_json() for lease in shown]
        if not json_:
            print(f"{target.name}: {len(shown)} lease(s){'' if all_ else ' active'}")
            print(format_table(shown))
    if json_:
        print(json.dumps(out if len(out) != 1 else next(iter(out.values())), indent=2))
    if failed:
        raise Exit(code=1)


@task(shared=("inventory",), help={"host": HOST_HELP,
                                   "json": "Print the checks as JSON for scripts."})
def check(c: Context, inventory: str | None = None, host: str | None = None,
          json_: bool = False) -> None:
    """Read-only health of the gateway; exits non-zero when anything is unhealthy.

    Checks: the VLAN interface is up with its address, dhcpd runs and listens on it
    (UDP 67), forwarding is on, the masquerade rule is present, the pool has free addresses.
    """
    from runbooks.dell_gateway.health import evaluate, format_checks, health_facts
    from runbooks.dell_gateway.readonly import gateway_facts

    inv = load_inventory_or_exit(c, inventory)
    healthy = True
    report: dict[str, object] = {}
    from runbooks.dell_gateway.plan import RUNBOOK

    for target, facts in gateway_facts(inv, RUNBOOK, host, health_facts):
        if isinstance(facts, str):
            print(f"{target.name}: UNHEALTHY: {facts}")
            report[target.name] = {"healthy": False, "error": facts}
            healthy = False
            continue
        checks = evaluate(target, inv, facts)
        healthy &= all(item.ok for item in checks)
        report[target.name] = {"healthy": all(item.ok for item in checks),
                               "checks": [vars(item) for item in checks]}
        if not json_:
            print(format_checks(target.name, checks))
    if json_:
        print(json.dumps(report, indent=2))
    if not healthy:
        raise Exit(code=1)


ns = Collection("dell-gateway")
ns.add_task(converge, default=True)
ns.add_task(leases)
ns.add_task(check)
