"""Read-only health of a gateway: VLAN interface, dhcpd, forwarding, masquerade, free pool.

All facts are read in one round trip (`health_facts`) and judged by a pure function
(`evaluate`), so the judgement is unit-tested from recorded outputs. Nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from runbooks.common.facts import UDP_LISTENERS
from runbooks.common.kernel import IP_FORWARD
from runbooks.common.links import link_command, parse_link
from runbooks.common.nat import FIREWALLD_RUNNING, FIREWALLD_RUNTIME_RULES, nft_table_fact
from runbooks.core.facts import Fact, FactResult
from runbooks.core.readonly import Check
from runbooks.dell_gateway import dhcp, docker
from runbooks.dell_gateway.leases import active_leases, parse_leases

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

NFT_TABLE = nft_table_fact("greenroom")
# dhcpd's processes: (pid, command line) each
DHCPD_PROCESSES = Fact(
    "dhcpd_processes", "ps -C dhcpd -o pid=,args=",
    lambda result: [tuple(line.split(None, 1)) for line in result.out.splitlines()
                    if line.strip()] if result.ok else [])
# The interfaces dhcpd receives on: it holds a raw packet socket bound to each one it serves
DHCPD_PACKET_INTERFACES = Fact(
    "dhcpd_packet_interfaces", "ss -H -0 -pn",
    lambda result: sorted({word[2:] for line in result.out.splitlines() if '"dhcpd"' in line
                           for word in line.split() if word.startswith("*:") and len(word) > 2}))


def health_facts(host: Host) -> dict[str, str]:
    """The read-only commands `evaluate` needs."""
    name = host.vlan.name if host.vlan else ""
    return {
        "link": link_command(name),
        "dhcpd": DHCPD_PROCESSES.command,
        "udp": UDP_LISTENERS.command,
        "packet": DHCPD_PACKET_INTERFACES.command,
        "forward": IP_FORWARD.command,
        "firewalld": FIREWALLD_RUNNING.command,
        "fw_rules": FIREWALLD_RUNTIME_RULES.command,
        "nft": NFT_TABLE.command,
        "leases": dhcp.LEASE_DATABASE.command,
        "nat.docker": docker.DOCKER_USER.command,
    }


def pool_size(start: IPv4Address, end: IPv4Address) -> int:
    """How many addresses the pool start..end (inclusive) holds."""
    return int(end) - int(start) + 1


def evaluate(host: Host, inventory: Inventory, facts: Mapping[str, FactResult],
             now: datetime | None = None) -> list[Check]:
    """Judge the gathered facts: one Check per health property."""
    net = inventory.network
    vlan_if = host.vlan.name if host.vlan else "?"
    address = host.vlan.address if host.vlan else None
    checks = []
    link = parse_link(vlan_if, facts["link"])
    have = ", ".join(str(a) for a in link.addresses) or "no IPv4 address"
    if not link.exists:
        checks.append(Check("interface", False, f"{vlan_if} does not exist"))
    else:
        ok = link.up and address in link.addresses
        checks.append(Check("interface", ok, f"{vlan_if} {'up' if link.up else 'DOWN'} "
                            f"(operstate {link.operstate}) with {have}; wanted {address}"))
    processes = DHCPD_PROCESSES.read(facts, "dhcpd")
    running = bool(processes)
    checks.append(Check("dhcpd running", running,
                        f"pid {', '.join(p[0] for p in processes)}" if running
                        else "no dhcpd process"))
    bound = any(s.port == 67 and "dhcpd" in s.processes
                for s in UDP_LISTENERS.read(facts, "udp"))
    on = DHCPD_PACKET_INTERFACES.read(facts, "packet")
    checks.append(Check("dhcpd listening", bound and vlan_if in on,
                        f"UDP port 67 {'bound by dhcpd' if bound else 'not bound by dhcpd'}; "
                        f"packet sockets on: {', '.join(on) or 'none'}"))
    forward = IP_FORWARD.read(facts, "forward")
    checks.append(Check("forwarding", forward == "1", f"net.ipv4.ip_forward = {forward or '?'}"))
    checks.append(_masquerade(host, inventory, facts))
    chain = docker.DOCKER_USER.read(facts, "nat.docker")
    if chain is not None:  # Docker runs here: its FORWARD DROP must let the VLAN out
        wanted = docker.docker_rules(vlan_if, host.upstream or "?")
        present = set(chain)
        missing = [r for r in wanted if r not in present]
        checks.append(Check("docker forward", not missing,
                            f"greenroom's rules in {docker.CHAIN}: "
                            f"{'present' if not missing else f'{len(missing)} missing'}"))
    leases = parse_leases(dhcp.LEASE_DATABASE.read(facts, "leases") or "")
    bound_now = [lease for lease in active_leases(leases, now or datetime.now(UTC))
                 if lease.ip in net.dhcp]
    size = pool_size(net.dhcp.start, net.dhcp.end)
    free = size - len(bound_now)
    checks.append(Check("pool", free > 0, f"{free} of {size} addresses free "
                        f"({net.dhcp.start}-{net.dhcp.end}, {len(bound_now)} leased)"))
    return checks


def _masquerade(host: Host, inventory: Inventory, facts: Mapping[str, FactResult]) -> Check:
    upstream, subnet = host.upstream or "?", inventory.network.subnet
    if FIREWALLD_RUNNING.read(facts, "firewalld"):
        rules = FIREWALLD_RUNTIME_RULES.read(facts, "fw_rules")
        ok = any("MASQUERADE" in r and f"-o {upstream}" in r and "POSTROUTING" in r
                 for r in rules)
        return Check("masquerade", ok, f"firewalld direct rule MASQUERADE -o {upstream}: "
                     f"{'present' if ok else 'missing'}")
    wanted = f'oifname "{upstream}" ip saddr {subnet} masquerade'
    ok = wanted in (NFT_TABLE.read(facts, "nft") or ())
    return Check("masquerade", ok, f"nft table inet greenroom: {wanted!r} "
                 f"{'present' if ok else 'missing'}")


def format_checks(host: str, checks: list[Check]) -> str:
    """Human report: one line per check, OK or FAIL, then a verdict line."""
    width = max(len(c.name) for c in checks)
    lines = [f"{host}:"]
    lines += [f"  {'OK  ' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}"
              for c in checks]
    failed = [c.name for c in checks if not c.ok]
    lines.append(f"  {host}: {'healthy' if not failed else 'UNHEALTHY: ' + ', '.join(failed)}")
    return "\n".join(lines)
