"""NAT: forwarding on, masquerade from the VLAN subnet out of the upstream interface.

Where firewalld is the host's firewall (as in the seed) the rules are firewalld direct rules,
added to the permanent and the runtime configuration (no reload, so nothing else is lost).
Otherwise greenroom keeps a table of its own, `table inet greenroom`, in
/etc/nftables.d/greenroom.nft: the file is validated with `nft -c -f`, loaded with `nft -f`
(which replaces only that table, in one transaction) and loaded again at boot by
greenroom-nftables.service. Nobody else's rules are ever flushed.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from runbooks.core.facts import FactResult
from runbooks.core.steps import (
    Action,
    Change,
    Command,
    File,
    Packages,
    Service,
    Step,
    StepFailed,
    Sysctl,
)
from runbooks.core.templates import managed_from, render
from runbooks.dell_gateway import docker

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

TABLE = "inet greenroom"
RULESET = "/etc/nftables.d/greenroom.nft"
UNIT = "greenroom-nftables.service"
COMMENT = "greenroom"
FACTS = {"nat.firewalld": "command -v firewall-cmd >/dev/null && firewall-cmd --state",
         **docker.FACT}


def nft_table(vlan_if: str, upstream: str, subnet: IPv4Network) -> str:
    """greenroom's table, written exactly as `nft list table inet greenroom` prints it."""
    return (
        "table inet greenroom {\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        f'\t\tiifname "{vlan_if}" oifname "{upstream}" ip saddr {subnet} accept\n'
        f'\t\tiifname "{upstream}" oifname "{vlan_if}" ct state established,related accept\n'
        "\t}\n"
        "\n"
        "\tchain postrouting {\n"
        "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        f'\t\toifname "{upstream}" ip saddr {subnet} masquerade\n'
        "\t}\n"
        "}\n"
    )


def nft_ruleset(table: str, source: str, vlan_id: int, vlan_if: str, upstream: str,
                subnet: IPv4Network) -> str:
    """The whole file for `nft -f`: creates, deletes and recreates greenroom's table."""
    return render("dell_gateway/greenroom.nft.j2", table=table.rstrip("\n"), source=source,
                  vlan_id=vlan_id, vlan_if=vlan_if, upstream=upstream, subnet=subnet)


def table_lines(text: str) -> list[str]:
    """The meaningful lines of a table listing (no blank lines, no handles, stripped)."""
    lines = []
    for line in text.splitlines():
        line = line.split(" # handle ")[0].strip()
        if line:
            lines.append(line)
    return lines


class NftTable(Step):
    """Ensure the live `table inet greenroom` is what the ruleset file loads."""

    def __init__(self, table: str, ruleset: str = RULESET) -> None:
        self.table, self.ruleset = table, ruleset
        self.name = f"Ensure nftables table {TABLE} is loaded from {ruleset}"

    def facts(self) -> Mapping[str, str]:
        return {"live": f"nft list table {TABLE}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        live = facts["live"]
        if live.ok and table_lines(live.out) == table_lines(self.table):
            return []
        what = "load" if not live.ok else "reload (live rules differ)"
        return [Change(f"{what} {TABLE} with nft -f {self.ruleset}",
                       (Action(f"nft -f {shlex.quote(self.ruleset)}"),))]


def firewalld_rules(vlan_if: str, upstream: str, subnet: IPv4Network) -> list[str]:
    """greenroom's direct rules, as `firewall-cmd --direct --get-all-rules` prints them."""
    mark = f"-m comment --comment {COMMENT}"
    return [
        f"ipv4 filter FORWARD 0 -i {vlan_if} -o {upstream} -s {subnet} {mark} -j ACCEPT",
        f"ipv4 filter FORWARD 0 -i {upstream} -o {vlan_if} -m conntrack --ctstate "
        f"RELATED,ESTABLISHED {mark} -j ACCEPT",
        f"ipv4 nat POSTROUTING 0 -s {subnet} -o {upstream} {mark} -j MASQUERADE",
    ]


def _rules(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


class FirewalldDirect(Step):
    """Ensure greenroom's firewalld direct rules, permanent and runtime; drop stale ones.

    Our rules carry `-m comment --comment greenroom`, so a rule of ours that the inventory
    no longer wants (say, after renaming the upstream interface) is removed, while rules
    of anybody else are never touched.
    """

    def __init__(self, rules: list[str]) -> None:
        self.rules = [" ".join(r.split()) for r in rules]
        self.name = "Ensure firewalld direct rules for VLAN forwarding and masquerade"

    def facts(self) -> Mapping[str, str]:
        return {"permanent": "firewall-cmd --permanent --direct --get-all-rules",
                "runtime": "firewall-cmd --direct --get-all-rules"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes: list[Change] = []
        for scope, flag in (("permanent", "--permanent "), ("runtime", "")):
            fact = facts[scope]
            if not fact.ok:
                raise StepFailed(f"firewall-cmd could not list the {scope} direct rules "
                                 f"(exit {fact.rc}); is firewalld running?")
            have = _rules(fact.out)
            for rule in self.rules:
                if rule not in have:
                    changes.append(Change(f"add {scope} direct rule: {rule}", (Action(
                        f"firewall-cmd {flag}--direct --add-rule {rule}"),)))
            for rule in have:
                if f"--comment {COMMENT} " in rule + " " and rule not in self.rules:
                    changes.append(Change(f"remove stale {scope} direct rule: {rule}", (Action(
                        f"firewall-cmd {flag}--direct --remove-rule {rule}"),)))
        return changes


def nat_steps(host: Host, inventory: Inventory, facts: Mapping[str, FactResult]) -> list[Step]:
    """Forwarding (live and persisted) plus masquerade via firewalld or greenroom's table."""
    if not host.upstream:
        raise StepFailed(f"{inventory.path}: hosts.{host.name}.upstream: missing; name the "
                         "interface toward the internet, e.g. upstream: eth0")
    vlan_if = host.vlan.name if host.vlan else ""
    subnet = inventory.network.subnet
    steps: list[Step] = [Sysctl("net.ipv4.ip_forward", 1)]
    steps += docker.docker_steps(vlan_if, host.upstream, facts)
    if facts["nat.firewalld"].ok:
        steps.append(FirewalldDirect(firewalld_rules(vlan_if, host.upstream, subnet)))
        return steps
    table = nft_table(vlan_if, host.upstream, subnet)
    ruleset = nft_ruleset(table, managed_from(inventory), inventory.network.vlan_id, vlan_if,
                          host.upstream, subnet)
    unit = render("dell_gateway/greenroom-nftables.service.j2", ruleset=RULESET)
    steps += [
        Packages(["nftables"]),
        File(RULESET, ruleset, mode="644", validate="nft -c -f {}"),
        File(f"/etc/systemd/system/{UNIT}", unit),
        Command(f"Ensure systemd has read {UNIT}", "systemctl daemon-reload",
                only_if=f"systemctl show -p NeedDaemonReload {UNIT} | grep -qx "
                        "NeedDaemonReload=yes"),
        NftTable(table),
        Service(UNIT, enabled=True, running=True),
    ]
    return steps
