"""Stale DHCP leases: active dynamic leases whose MAC no longer answers on the VLAN, pruned.

A demo lab collects leases from laptops, phones and MicroVMs of the last venue; they fill the
pool until they expire. A lease is stale when it is active, its address is in the pool, and
after one ping from the gateway's VLAN interface the neighbour table does not show the
lease's MAC at that address. Pruning stops dhcpd, removes every entry of the stale addresses
from the lease database (every other byte is kept: live leases, expired history, comments),
and starts dhcpd again; it does nothing when there is no stale lease. Reserved hosts
(fixed-address) have no lease entries, so they are never touched.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps.base import Action, Change, Step, StepFailed
from runbooks.dell_gateway.dhcp import LEASE_DATABASE, LEASES, SERVICE
from runbooks.dell_gateway.leases import TOKEN, Lease, active_leases, parse_leases

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

BAD_NEIGHBOUR_STATES = ("FAILED", "INCOMPLETE")
Neighbours = dict[IPv4Address, tuple[str | None, str]]  # ip -> (MAC or None, state)


def pool_leases(text: str, inventory: Inventory, now: datetime | None = None) -> list[Lease]:
    """The active leases of the database that lie in the inventory's pool."""
    return [lease for lease in active_leases(parse_leases(text), now or datetime.now(UTC))
            if lease.ip in inventory.network.dhcp]


def probe_command(interface: str, ips: Iterable[IPv4Address]) -> str:
    """Ping every address once (in parallel), then print the interface's neighbour table."""
    pings = " ".join(f"ping -n -q -c 1 -W 1 -I {shlex.quote(interface)} {ip} "
                     ">/dev/null 2>&1 &" for ip in ips)
    return f"{pings} wait; ip -4 neigh show dev {shlex.quote(interface)}"


def parse_neighbours(text: str) -> Neighbours:
    """`ip -4 neigh show dev IF` -> {ip: (mac or None, state)}."""
    table: Neighbours = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            ip = IPv4Address(fields[0])
        except ValueError:
            continue
        mac = fields[fields.index("lladdr") + 1].lower() if "lladdr" in fields[:-1] else None
        table[ip] = (mac, fields[-1])
    return table


def _neighbours(result: FactResult) -> Neighbours | None:
    """The probe's table; None when it could not be read (failed and printed nothing)."""
    if not result.ok and not result.out:
        return None
    return parse_neighbours(result.out)


def neighbours_fact(interface: str, ips: Iterable[IPv4Address]) -> Fact[Neighbours | None]:
    """The neighbour table of `interface` just after pinging `ips` (`probe_command`)."""
    return Fact(f"neighbours {interface}", probe_command(interface, ips), _neighbours)


def stale_leases(leases: list[Lease], neighbours: Mapping[IPv4Address, tuple[str | None, str]],
                 ) -> list[Lease]:
    """The leases whose MAC did not answer at their address."""
    stale = []
    for lease in leases:
        mac, state = neighbours.get(lease.ip, (None, "FAILED"))
        if mac is None or mac != (lease.mac or "").lower() or state in BAD_NEIGHBOUR_STATES:
            stale.append(lease)
    return stale


def without_leases(text: str, ips: Iterable[IPv4Address]) -> str:
    """The lease database with every `lease IP { ... }` block of `ips` removed (with the
    whitespace after it); everything else is kept byte for byte."""
    drop = {str(ip) for ip in ips}
    out: list[str] = []
    position = 0
    matches = list(TOKEN.finditer(text))
    index = 0
    while index < len(matches):
        match = matches[index]
        if match.group(0) == "lease":
            words = [m for m in matches[index + 1:index + 6] if not m.group(0)[0].isspace()
                     and not m.group(0).startswith("#")]
            if len(words) >= 2 and words[0].group(0) in drop and words[1].group(0) == "{":
                end = _block_end(matches, matches.index(words[1]))
                if end is not None:
                    out.append(text[position:match.start()])
                    stop = matches[end].end()
                    while stop < len(text) and text[stop] in " \t\r\n":
                        stop += 1
                    position = stop
                    while index < len(matches) and matches[index].start() < stop:
                        index += 1
                    continue
        index += 1
    out.append(text[position:])
    return "".join(out)


def _block_end(matches: list, open_index: int) -> int | None:
    depth = 0
    for index in range(open_index, len(matches)):
        token = matches[index].group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


class PruneStaleLeases(Step):
    """Ensure no active lease of the pool belongs to a MAC that is gone from the VLAN."""

    name = "Ensure no stale DHCP lease holds the pool"

    def __init__(self, host: Host, inventory: Inventory, leases_text: str) -> None:
        self.host, self.inventory = host, inventory
        self.interface = host.vlan.name if host.vlan else ""
        self.leases = pool_leases(leases_text, inventory)
        self.neighbours = neighbours_fact(self.interface, [le.ip for le in self.leases])

    def facts(self) -> Mapping[str, str]:
        if not self.leases or not self.interface:
            return {}
        return {"leases": LEASE_DATABASE.command, "neighbours": self.neighbours.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        text = LEASE_DATABASE.read(facts, "leases") if "leases" in facts else None
        if text is None:
            return []
        current = pool_leases(text, self.inventory)
        table = self.neighbours.read(facts, "neighbours")
        if table is None:
            raise StepFailed(f"cannot read the neighbour table of {self.interface}")
        stale = stale_leases(current, table)
        if not stale:
            return []
        pruned = without_leases(text, [le.ip for le in stale])
        digest = hashlib.sha256(text.encode()).hexdigest()
        wanted = hashlib.sha256(pruned.encode()).hexdigest()
        tmp = f"{LEASES}.greenroom-prune"
        # The pruned database is received and checked whole before dhcpd is stopped (a
        # connection lost mid-transfer changes nothing), and dhcpd is started again
        # however the script ends.
        script = (
            f"set -e; rm -f {tmp}; cat > {tmp}; "
            f"if ! echo '{wanted}  {tmp}' | sha256sum -c --status -; then rm -f {tmp}; "
            "echo 'the pruned lease database arrived incomplete; nothing was changed' >&2; "
            "exit 4; fi; "
            f"chmod --reference={LEASES} {tmp}; chown --reference={LEASES} {tmp}; "
            f"sync {tmp}; trap 'systemctl start {SERVICE}' EXIT; systemctl stop {SERVICE}; "
            f"if [ \"$(sha256sum < {LEASES} | cut -d' ' -f1)\" != {digest} ]; then "
            f"rm -f {tmp}; echo 'the lease database changed while pruning; run again' >&2; "
            f"exit 1; fi; "
            f"mv {tmp} {LEASES}; rm -f {LEASES}~")
        names = ", ".join(f"{le.ip} ({le.mac or '?'}"
                          f"{', ' + le.hostname if le.hostname else ''})" for le in stale)
        return [Change(f"prune {len(stale)} stale lease(s): {names}",
                       (Action(script, pruned),))]
