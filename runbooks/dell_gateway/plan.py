"""The dell-gateway runbook: VLAN interface, DHCP server, NAT, the routes to the routers' LANs
and the time server on hosts with role gateway.

One extra round trip in plan() reads which tool manages the network and whether firewalld
is the firewall; every step then reads its own facts in the engine's single batch.
"""

from __future__ import annotations

from runbooks.common.vlan import vlan_facts, vlan_steps
from runbooks.core.context import HostContext
from runbooks.core.runner import Runbook
from runbooks.core.steps import Plan
from runbooks.dell_gateway import dhcp, nat, routes, timeserver


def gateway_plan(ctx: HostContext) -> Plan:
    """The gateway's steps, in order: VLAN interface, DHCP server, NAT (forwarding on), the
    routes to the routers' LANs, time server."""
    host, inventory = ctx.host, ctx.inventory
    facts = ctx.gather({**vlan_facts(host), **nat.FACTS})
    plan = Plan()
    plan.add(*vlan_steps(host, inventory, facts))
    plan.add(*dhcp.dhcp_steps(host, inventory))
    plan.add(*nat.nat_steps_for(host, inventory, facts))
    plan.add(*routes.route_steps(host, inventory))
    plan.add(*timeserver.timeserver_steps(inventory))
    plan.handler(dhcp.RESTART, timeserver.RESTART)
    return plan


RUNBOOK = Runbook("dell-gateway", ("gateway",), gateway_plan)
