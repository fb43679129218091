"""What dell-gateway contributes to demo.check and demo.reset (see runbooks/demo/order.py).

CHECK: dell-gateway.check's health checks (the same facts and judgement), read in demo.check's
single round trip to the gateway. PRUNE_LEASES: demo.reset's stale-lease pruning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps.base import Plan
from runbooks.dell_gateway.dhcp import LEASE_DATABASE
from runbooks.dell_gateway.health import evaluate, health_facts
from runbooks.dell_gateway.prune import PruneStaleLeases

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext
    from runbooks.core.inventory import Host, Inventory

PREFIX = "gw."


class _Check:
    """The gateway's health, as a demo.check probe."""

    roles = ("gateway",)

    def facts(self, host: Host, inventory: Inventory) -> dict[str, str]:
        return {PREFIX + key: command for key, command in health_facts(host).items()}

    def evaluate(self, host: Host, inventory: Inventory,
                 facts: Mapping[str, FactResult]) -> list[Any]:
        mine = {key[len(PREFIX):]: value for key, value in facts.items()
                if key.startswith(PREFIX)}
        return evaluate(host, inventory, mine)


CHECK = _Check()


def prune_plan(ctx: HostContext) -> Plan:
    """One step: prune the stale leases (reads the lease database first)."""
    found = LEASE_DATABASE.read(ctx.gather({"leases": LEASE_DATABASE.command}), "leases")
    return Plan().add(PruneStaleLeases(ctx.host, ctx.inventory, found or ""))


PRUNE_LEASES = Runbook("dell-gateway.leases", ("gateway",), prune_plan)
