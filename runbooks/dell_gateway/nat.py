"""The gateway's NAT: the VLAN subnet goes out masqueraded on the upstream interface.

The rules themselves (firewalld direct rules, or greenroom's own `table inet greenroom`)
come from runbooks.common.nat; this module says what the gateway wants from the inventory,
and adds Docker's DOCKER-USER rules where Docker runs (runbooks.dell_gateway.docker).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbooks.common.nat import FIREWALLD_RUNNING, Nat, nat_steps
from runbooks.core.facts import FactResult
from runbooks.core.steps import Step, StepFailed
from runbooks.core.templates import managed_from
from runbooks.dell_gateway import docker

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

# read in plan(): they decide which steps the gateway gets
FACTS = {"nat.firewalld": FIREWALLD_RUNNING.command, "nat.docker": docker.DOCKER_USER.command}


def gateway_nat(host: Host, inventory: Inventory) -> Nat:
    """What the gateway NATs: the VLAN subnet from its VLAN interface out of upstream."""
    if not host.upstream:
        raise StepFailed(f"{inventory.path}: hosts.{host.name}.upstream: missing; name the "
                         "interface toward the internet, e.g. upstream: eth0")
    vlan_if = host.vlan.name if host.vlan else ""
    return Nat(inside=vlan_if, upstream=host.upstream, subnet=inventory.network.subnet)


def nat_steps_for(host: Host, inventory: Inventory,
                  facts: Mapping[str, FactResult]) -> list[Step]:
    """Forwarding (live and persisted) plus masquerade via firewalld or greenroom's table,
    and Docker's DOCKER-USER rules on a gateway that runs Docker."""
    nat = gateway_nat(host, inventory)
    network = inventory.network
    steps = nat_steps(
        nat, firewalld=FIREWALLD_RUNNING.read(facts, "nat.firewalld"),
        source=managed_from(inventory), runbook="dell-gateway",
        description=f"NAT for VLAN {network.vlan_id}: {nat.subnet} on {nat.inside} goes out "
                    f"masqueraded on {nat.upstream}.")
    docker_rules = docker.docker_steps(nat.inside, nat.upstream,
                                       docker.DOCKER_USER.read(facts, "nat.docker"))
    return steps[:1] + docker_rules + steps[1:]
