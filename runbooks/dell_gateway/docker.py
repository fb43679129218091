"""Let VLAN traffic through a gateway that also runs Docker.

Docker sets the iptables FORWARD policy to DROP and sends forwarded packets through its
DOCKER-USER chain first; greenroom's own nftables accept cannot override a drop in another
table, so on such a host the boards would lose their way out. Docker's documented place for
our rules is DOCKER-USER: greenroom inserts its two rules there (marked `greenroom`), live,
and a unit puts them back whenever Docker (re)starts, since iptables rules do not survive a
reboot. Hosts without Docker (no DOCKER-USER chain) get nothing of this.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps import Action, Change, File, Service, Step, daemon_reloaded

CHAIN = "DOCKER-USER"
UNIT = "greenroom-docker-forward.service"
# The rules of Docker's DOCKER-USER chain as `iptables -S` prints them; None: no such chain
# (no Docker on this host).
DOCKER_USER = Fact("docker_user_rules", f"iptables -w -S {CHAIN}",
                   lambda result: result.out.splitlines() if result.ok else None)


def docker_rules(vlan_if: str, upstream: str) -> list[str]:
    """greenroom's DOCKER-USER rules, exactly as `iptables -S DOCKER-USER` prints them."""
    return [
        f"-A {CHAIN} -i {vlan_if} -o {upstream} -m comment --comment greenroom -j ACCEPT",
        f"-A {CHAIN} -i {upstream} -o {vlan_if} -m conntrack --ctstate RELATED,ESTABLISHED "
        "-m comment --comment greenroom -j ACCEPT",
    ]


def insert_command(rule: str) -> str:
    """`iptables -I` for a rule printed by -S, unless it is already there (-C)."""
    spec = rule.split(" ", 2)[2]
    return f"iptables -w -C {CHAIN} {spec} 2>/dev/null || iptables -w -I {CHAIN} {spec}"


def unit_text(rules: list[str]) -> str:
    lines = "\n".join(f"ExecStart=/bin/sh -c {shlex.quote(insert_command(r))}" for r in rules)
    return (
        "# Managed by greenroom (dell-gateway): VLAN forwarding through Docker's DOCKER-USER.\n"
        "[Unit]\n"
        "Description=greenroom: let VLAN traffic through Docker's FORWARD rules\n"
        "After=docker.service\nPartOf=docker.service\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        f"{lines}\n\n"
        "[Install]\nWantedBy=docker.service\n"
    )


class DockerUserRules(Step):
    """Ensure greenroom's ACCEPT rules head Docker's DOCKER-USER chain."""

    def __init__(self, rules: list[str]) -> None:
        self.rules = rules
        self.name = f"Ensure VLAN traffic passes Docker's {CHAIN} chain"

    def facts(self) -> Mapping[str, str]:
        return {"chain": DOCKER_USER.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        present = set(DOCKER_USER.read(facts, "chain") or ())
        return [Change(f"iptables -I {rule[3:]}", (Action(insert_command(rule)),))
                for rule in self.rules if rule not in present]


def docker_steps(vlan_if: str, upstream: str, chain: list[str] | None) -> list[Step]:
    """The steps for a gateway with Docker; none when the host has no DOCKER-USER chain
    (`chain` is DOCKER_USER's value)."""
    if chain is None:
        return []
    rules = docker_rules(vlan_if, upstream)
    return [
        DockerUserRules(rules),
        File(f"/etc/systemd/system/{UNIT}", unit_text(rules)),
        daemon_reloaded(UNIT),
        Service(UNIT, enabled=True, running=None),
    ]
