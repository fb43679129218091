"""NAT for an inside network: forwarding on, masquerade out of the upstream interface, and
port forwards (DNAT) from the upstream side to inside addresses.

    nat = Nat(inside="eth0.100", upstream="eth0", subnet=IPv4Network("192.168.10.0/25"),
              forwards=(PortForward("tcp", 8080, "192.168.10.3", 80),))
    steps = nat_steps(nat, firewalld=FIREWALLD_RUNNING.read(facts), source="site lab ...")

Used by dell-gateway (the VLAN) and next by xen-dom0 (its guests' bridge). Where firewalld
is the host's firewall the rules are firewalld direct rules, added to the permanent and the
runtime configuration (no reload, so nothing else is lost). Otherwise greenroom keeps a table
of its own (`table inet <name>`, default `greenroom`) in /etc/nftables.d/<name>.nft: the
file is validated with `nft -c -f`, loaded with `nft -f` (which replaces only that table, in
one transaction) and loaded again at boot by <name>-nftables.service. Nobody else's rules
are ever flushed. Two runbooks on one host use two table names, so neither replaces the
other's rules.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from runbooks.common.kernel import Sysctl
from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps import (
    Action,
    Change,
    File,
    Packages,
    Service,
    Step,
    StepFailed,
    daemon_reloaded,
)
from runbooks.core.templates import render

PROTOCOLS = ("tcp", "udp")

FIREWALLD_RUNNING = Fact(
    "firewalld_running", "command -v firewall-cmd >/dev/null && firewall-cmd --state",
    lambda result: result.ok)


def _rule_lines(result: FactResult) -> list[str]:
    return [" ".join(line.split()) for line in result.out.splitlines() if line.strip()]


# firewalld's direct rules, normalised to one space between words
FIREWALLD_RUNTIME_RULES = Fact(
    "firewalld_runtime_rules", "firewall-cmd --direct --get-all-rules", _rule_lines)
FIREWALLD_PERMANENT_RULES = Fact(
    "firewalld_permanent_rules", "firewall-cmd --permanent --direct --get-all-rules",
    _rule_lines)


def table_lines(text: str) -> list[str]:
    """The meaningful lines of a table listing (no blank lines, no handles, stripped)."""
    lines = []
    for line in text.splitlines():
        line = line.split(" # handle ")[0].strip()
        if line:
            lines.append(line)
    return lines


# Every table nftables has loaded, as meaningful lines (empty without nft or rules)
NFT_RULESET = Fact("nft_ruleset", "nft list ruleset",
                   lambda result: table_lines(result.out) if result.ok else [])


def nft_table_fact(name: str = "greenroom") -> Fact[list[str] | None]:
    """The live `table inet <name>`, as its meaningful lines (None when it is not loaded)."""
    return Fact(f"nft_table_{name}", f"nft list table inet {name}",
                lambda result: table_lines(result.out) if result.ok else None)


@dataclass(frozen=True)
class PortForward:
    """Connections to `port`/`protocol` arriving on the upstream interface (or `interface`)
    go to `to_address`:`to_port` (the same port when None)."""

    protocol: str
    port: int
    to_address: IPv4Address | str
    to_port: int | None = None
    interface: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"port forward protocol {self.protocol!r}: use tcp or udp")
        for port in (self.port, self.to_port):
            if port is not None and not 0 < int(port) < 65536:
                raise ValueError(f"port forward port {port}: use 1-65535")
        try:
            IPv4Address(str(self.to_address))
        except ValueError:
            raise ValueError(f"port forward target {self.to_address!r}: use an IPv4 "
                             "address") from None

    @property
    def destination(self) -> str:
        return f"{self.to_address}:{self.to_port}" if self.to_port else str(self.to_address)


@dataclass(frozen=True)
class Nat:
    """What to NAT: `subnet` on interface `inside` goes out masqueraded on `upstream`
    (routed with its own addresses when `masquerade` is false); the table (and firewalld
    comment) is `name`, one per runbook sharing a host."""

    inside: str
    upstream: str
    subnet: IPv4Network
    forwards: tuple[PortForward, ...] = ()
    name: str = "greenroom"
    masquerade: bool = True

    @property
    def ruleset(self) -> str:
        return f"/etc/nftables.d/{self.name}.nft"

    @property
    def unit(self) -> str:
        return f"{self.name.replace('_', '-')}-nftables.service"


def nft_table(nat: Nat) -> str:
    """The table, written exactly as `nft list table inet <name>` prints it."""
    text = (
        f"table inet {nat.name} {{\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        f'\t\tiifname "{nat.inside}" oifname "{nat.upstream}" ip saddr {nat.subnet} accept\n'
        f'\t\tiifname "{nat.upstream}" oifname "{nat.inside}" ct state established,related '
        "accept\n"
        "\t}\n"
        "\n"
        "\tchain postrouting {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        + (f'\t\toifname "{nat.upstream}" ip saddr {nat.subnet} masquerade\n'
           if nat.masquerade else "")
        + "\t}\n"
    )
    if nat.forwards:
        text += "\n\tchain prerouting {\n"
        text += "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        for fwd in nat.forwards:
            text += (f'\t\tiifname "{fwd.interface or nat.upstream}" {fwd.protocol} dport '
                     f"{fwd.port} dnat ip to {fwd.destination}\n")
        text += "\t}\n"
    return text + "}\n"


def nft_ruleset(nat: Nat, source: str, runbook: str, description: str) -> str:
    """The whole file for `nft -f`: creates, deletes and recreates the table."""
    return render("common/greenroom.nft.j2", table=nft_table(nat).rstrip("\n"),
                  table_name=nat.name, source=source, runbook=runbook, description=description)


class NftTable(Step):
    """Ensure the live `table inet <name>` is what the ruleset file loads."""

    def __init__(self, nat: Nat) -> None:
        self.nat = nat
        self.wanted = table_lines(nft_table(nat))
        self.fact = nft_table_fact(nat.name)
        self.name = f"Ensure nftables table inet {nat.name} is loaded from {nat.ruleset}"

    def facts(self) -> Mapping[str, str]:
        return {"live": self.fact.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        live = self.fact.read(facts, "live")
        if live == self.wanted:
            return []
        what = "load" if live is None else "reload (live rules differ)"
        return [Change(f"{what} inet {self.nat.name} with nft -f {self.nat.ruleset}",
                       (Action(f"nft -f {shlex.quote(self.nat.ruleset)}"),))]


def firewalld_rules(nat: Nat) -> list[str]:
    """Our direct rules, as `firewall-cmd --direct --get-all-rules` prints them."""
    mark = f"-m comment --comment {nat.name}"
    rules = [
        f"ipv4 filter FORWARD 0 -i {nat.inside} -o {nat.upstream} -s {nat.subnet} {mark} "
        "-j ACCEPT",
        f"ipv4 filter FORWARD 0 -i {nat.upstream} -o {nat.inside} -m conntrack --ctstate "
        f"RELATED,ESTABLISHED {mark} -j ACCEPT",
    ]
    if nat.masquerade:
        rules.append(f"ipv4 nat POSTROUTING 0 -s {nat.subnet} -o {nat.upstream} {mark} "
                     "-j MASQUERADE")
    for fwd in nat.forwards:
        rules.append(f"ipv4 nat PREROUTING 0 -i {fwd.interface or nat.upstream} -p "
                     f"{fwd.protocol} --dport {fwd.port} {mark} -j DNAT --to-destination "
                     f"{fwd.destination}")
    return rules


class FirewalldDirect(Step):
    """Ensure our firewalld direct rules, permanent and runtime; drop stale ones.

    Our rules carry `-m comment --comment <name>`, so a rule of ours that the inventory
    no longer wants (say, after renaming the upstream interface) is removed, while rules
    of anybody else are never touched.
    """

    def __init__(self, rules: list[str], comment: str = "greenroom") -> None:
        self.rules = [" ".join(r.split()) for r in rules]
        self.comment = comment
        self.name = "Ensure firewalld direct rules for forwarding, masquerade and port forwards"

    def facts(self) -> Mapping[str, str]:
        return {"permanent": FIREWALLD_PERMANENT_RULES.command,
                "runtime": FIREWALLD_RUNTIME_RULES.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes: list[Change] = []
        for scope, flag, fact in (("permanent", "--permanent ", FIREWALLD_PERMANENT_RULES),
                                  ("runtime", "", FIREWALLD_RUNTIME_RULES)):
            if not facts[scope].ok:
                raise StepFailed(f"firewall-cmd could not list the {scope} direct rules "
                                 f"(exit {facts[scope].rc}); is firewalld running?")
            have = fact.read(facts, scope)
            for rule in self.rules:
                if rule not in have:
                    changes.append(Change(f"add {scope} direct rule: {rule}", (Action(
                        f"firewall-cmd {flag}--direct --add-rule {rule}"),)))
            for rule in have:
                if f"--comment {self.comment} " in rule + " " and rule not in self.rules:
                    changes.append(Change(f"remove stale {scope} direct rule: {rule}", (Action(
                        f"firewall-cmd {flag}--direct --remove-rule {rule}"),)))
        return changes


def nat_steps(nat: Nat, *, firewalld: bool, source: str, runbook: str,
              description: str) -> list[Step]:
    """Forwarding (live and persisted), masquerade and port forwards: firewalld direct
    rules when firewalld runs (`firewalld`, from FIREWALLD_RUNNING), else our own table.
    `source` and `runbook` name where the ruleset file comes from, in its header."""
    steps: list[Step] = [Sysctl("net.ipv4.ip_forward", 1)]
    if firewalld:
        steps.append(FirewalldDirect(firewalld_rules(nat), comment=nat.name))
        return steps
    ruleset = nft_ruleset(nat, source, runbook, description)
    unit = render("common/greenroom-nftables.service.j2", ruleset=nat.ruleset, table_name=nat.name,
                  runbook=runbook)
    unit_path = f"/etc/systemd/system/{nat.unit}"
    steps += [
        Packages(["nftables"]),
        File(nat.ruleset, ruleset, mode="644", validate="nft -c -f {}"),
        File(unit_path, unit),
        daemon_reloaded(nat.unit),
        NftTable(nat),
        Service(nat.unit, enabled=True, running=True),
    ]
    return steps
