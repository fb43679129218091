"""Read-only state of a dom0: its health checks and its guests' DHCP leases (pure parsers
plus the fact commands they read)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Interface
from typing import Any

from runbooks.common.facts import UDP_LISTENERS
from runbooks.common.kernel import IP_FORWARD
from runbooks.common.links import link_command, parse_link
from runbooks.common.nat import FIREWALLD_RUNTIME_RULES, NFT_RULESET
from runbooks.core.facts import Fact, FactResult
from runbooks.core.readonly import Check
from runbooks.core.steps.system import unit_active
from runbooks.xen_dom0.render import DNSMASQ_BASE
from runbooks.xen_dom0.settings import XenSettings
from runbooks.xen_dom0.steps import XL_INFO


@dataclass(frozen=True)
class Lease:
    """One line of a dnsmasq lease file."""

    bridge: str
    ip: str
    mac: str
    hostname: str | None
    expires: str | None  # ISO time; None: never

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_leases(bridge: str, text: str) -> list[Lease]:
    """dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT-ID` per line (expiry 0: never,
    hostname `*`: none)."""
    leases = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or not words[0].isdigit():
            continue
        expiry = int(words[0])
        expires = None if expiry == 0 else datetime.fromtimestamp(expiry, UTC).isoformat()
        leases.append(Lease(bridge, words[2], words[1].lower(),
                            None if words[3] == "*" else words[3], expires))
    return leases


def lease_file(bridge: str) -> Fact[str | None]:
    """The lease file of the dnsmasq instance serving `bridge` (None: there is none)."""
    return Fact(f"leases/{bridge}", f"cat {DNSMASQ_BASE}/{bridge}/leases",
                lambda result: result.out if result.ok else None)


def lease_facts(settings: XenSettings) -> dict[str, str]:
    return {f"leases/{b.name}": lease_file(b.name).command for b in settings.private}


def format_leases(leases: list[Lease]) -> str:
    rows = [("BRIDGE", "IP", "MAC", "HOSTNAME", "EXPIRES")]
    rows += [(x.bridge, x.ip, x.mac, x.hostname or "-", x.expires or "never") for x in leases]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def health_facts(settings: XenSettings) -> dict[str, str]:
    """Every command `evaluate` needs (one round trip)."""
    facts = {"xl": XL_INFO.command, "forward": IP_FORWARD.command,
             "udp": UDP_LISTENERS.command, "nft": NFT_RULESET.command,
             "firewalld": FIREWALLD_RUNTIME_RULES.command,
             **lease_facts(settings)}
    bridges = [b.name for b in settings.private]
    if settings.public:
        bridges.append(settings.public.name)
    for name in bridges:
        facts[f"link/{name}"] = link_command(name)
    for bridge in settings.private:
        facts[f"unit/{bridge.name}"] = unit_active(f"dnsmasq@{bridge.name}.service").command
    return facts


def evaluate(settings: XenSettings, facts: Mapping[str, FactResult]) -> list[Check]:
    """The checks of one dom0, in the order they are printed."""
    checks = []
    info = XL_INFO.read(facts, "xl")
    if info is not None:
        checks.append(Check("hypervisor", True, f"Xen {info.get('xen_version', '?')}, "
                            f"command line: {info.get('xen_commandline', '')}"))
    else:
        why = "Xen is not running (`xl info` failed)"
        checks.append(Check("hypervisor", not settings.xen_default,
                            why if settings.xen_default else why + "; Xen is not the default "
                                                                   "boot entry"))
    wanted: list[tuple[str, IPv4Interface | None]] = [(b.name, b.address)
                                                      for b in settings.private]
    if settings.public:
        wanted.insert(0, (settings.public.name, settings.public.address))
    for name, address in wanted:
        link = parse_link(name, facts[f"link/{name}"])
        has = address in link.addresses if address else bool(link.addresses)
        ok = link.exists and link.kind == "bridge" and link.up and has
        shown = ", ".join(str(a) for a in link.addresses) or "no address"
        detail = (f"up with {shown}" if ok else "missing" if not link.exists else
                  f"{'up' if link.up else 'down'}, {shown} (want {address or 'a DHCP address'})")
        checks.append(Check(f"bridge {name}", ok, detail))
    listening = UDP_LISTENERS.read(facts, "udp")
    for bridge in settings.private:
        active = unit_active(f"dnsmasq@{bridge.name}.service").read(
            facts, f"unit/{bridge.name}") == "active"
        dhcp = any(s.port == 67 for s in listening)
        dns = any(s.port == 53 and s.address == str(bridge.address.ip) for s in listening)
        ok = active and dhcp and dns
        checks.append(Check(f"dnsmasq@{bridge.name}", ok,
                            "running, DHCP and DNS listening" if ok else
                            f"{'running' if active else 'NOT running'}, DHCP "
                            f"{'listening' if dhcp else 'NOT listening'}, DNS on "
                            f"{bridge.address.ip} {'listening' if dns else 'NOT listening'}"))
        leases = parse_leases(bridge.name,
                              lease_file(bridge.name).read(facts, f"leases/{bridge.name}") or "")
        reserved = ", ".join(f"{r.name} {r.mac}->{r.ip}" for r in bridge.reservations)
        checks.append(Check(f"leases {bridge.name}", True,
                            f"{len(leases)} lease(s); reservations: {reserved or 'none'}"))
    if settings.private and (settings.masquerade or settings.forwards):
        on = IP_FORWARD.read(facts, "forward") == "1"
        checks.append(Check("forwarding", on, "net.ipv4.ip_forward = 1" if on else
                            "net.ipv4.ip_forward is off: guests cannot leave the host"))
    rules = "\n".join([*NFT_RULESET.read(facts, "nft"),
                       *FIREWALLD_RUNTIME_RULES.read(facts, "firewalld")])
    if settings.masquerade and settings.private:
        ok = "masquerade" in rules or "MASQUERADE" in rules
        checks.append(Check("masquerade", ok, "present" if ok else "missing: run inv xen-dom0"))
    for fwd in settings.forwards:
        nft = f"{fwd.protocol} dport {fwd.port} dnat ip to {fwd.to}"
        firewalld = f"--dport {fwd.port} "
        ok = nft in rules or (firewalld in rules and str(fwd.to) in rules)
        checks.append(Check(f"forward {fwd.protocol}/{fwd.port}", ok,
                            f"-> {fwd.to}:{fwd.to_port}" + ("" if ok else " MISSING")))
    return checks


def format_checks(host: str, checks: list[Check]) -> str:
    healthy = all(c.ok for c in checks)
    lines = [f"{host}: {'HEALTHY' if healthy else 'UNHEALTHY'}"]
    lines += [f"  {'ok ' if c.ok else 'BAD'} {c.name}: {c.detail}" for c in checks]
    return "\n".join(lines)
