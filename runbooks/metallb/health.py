"""Read-only BGP health on routers and clients, for `inv metallb.check`.

The LoadBalancer IPs are the ones asked about (--address), else those the cluster assigned
(read on its first server: every Service of type LoadBalancer must have one).
On each router: every cluster node's session Established (FRR: `vtysh -c 'show bgp summary
json'`; BIRD: `birdc show protocols`) and a kernel route for every LoadBalancer IP
(`ip route show proto bgp` / `proto bird`). RouterOS routers have no shell: the task reads
them itself (runbooks/metallb/routeros_check.py). On each client (role client, else the router
itself with --from-router): every LoadBalancer IP answers HTTP. Nothing is changed anywhere.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbooks.common.bgp import PlanError, site_plan
from runbooks.common.bgp_state import BGP_ROUTES, BGP_SESSIONS, node_states
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Health, Plan, StepFailed
from runbooks.metallb.services import Assigned, from_cluster

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext


class RouterHealth(Health):
    """Sessions with every node Established; a route for every address asked about."""

    def __init__(self, ctx: HostContext, kind: str, nodes: Sequence[tuple[str, str]],
                 addresses: Sequence[str]) -> None:
        super().__init__(ctx, "Check BGP sessions and LoadBalancer routes",
                         {"sessions": BGP_SESSIONS[kind].command,
                          "routes": BGP_ROUTES[kind].command})
        self.kind, self.nodes, self.addresses = kind, list(nodes), list(addresses)

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        out: list[tuple[bool, str]] = []
        by_node = node_states(self.kind, BGP_SESSIONS[self.kind].read(facts, "sessions"),
                              self.nodes)
        for name, address in self.nodes:
            state = by_node[name]
            out.append((state == "Established", f"session with {name} ({address}): {state}"))
        routes = BGP_ROUTES[self.kind].read(facts, "routes")
        for address in self.addresses:
            out.append((address in routes, f"route to LoadBalancer IP {address}"
                        + ("" if address in routes else ": none learned")))
        return out


@dataclass(frozen=True)
class HttpAnswer:
    """What one HTTP fetch from a host found: answered (2xx/3xx) and what it printed."""

    ok: bool
    detail: str  # the status code, or the error's last words; "no reply" when none


def parse_http_answer(result: FactResult) -> HttpAnswer:
    """The fetch's exit status and the tail of what it printed."""
    return HttpAnswer(result.ok, result.out.strip()[-120:] or "no reply")


_PY_FETCH = ("import urllib.request as u; "
             "print(u.urlopen('http://{0}/', timeout=5).status)")


def http_answer(address: str) -> Fact[HttpAnswer]:
    """Fetch http://ADDRESS/ from the host: with curl, or Python where curl is missing (a
    minimal Debian has python3 but not always curl); 5 s at the most."""
    url = shlex.quote(f"http://{address}/")
    return Fact(f"http {address}",
                "if command -v curl >/dev/null; then "
                f"curl -fsS -o /dev/null -m 5 -w '%{{http_code}}' {url} 2>&1; "
                f"else python3 -c {shlex.quote(_PY_FETCH.format(address))} 2>&1; fi",
                parse_http_answer)


class ClientHealth(Health):
    """Every LoadBalancer IP answers HTTP from this host."""

    def __init__(self, ctx: HostContext, addresses: Sequence[str]) -> None:
        self.fetches = {address: http_answer(address) for address in addresses}
        super().__init__(ctx, "Check the LoadBalancer IPs answer",
                         {address: fact.command for address, fact in self.fetches.items()})
        self.addresses = list(addresses)

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        out = []
        for address, fact in self.fetches.items():
            answer = fact.read(facts, address)
            out.append((answer.ok, f"http://{address}/ answers" if answer.ok else
                        f"http://{address}/ does not answer ({answer.detail})"))
        return out


class AssignedHealth(Health):
    """Every Service of type LoadBalancer has an address (read from the cluster)."""

    def __init__(self, ctx: HostContext, assigned: Assigned) -> None:
        super().__init__(ctx, "Check the LoadBalancer Services have addresses", {})
        self.assigned = assigned

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        out = [(True, f"Service {name}: {', '.join(found)}")
               for name, found in sorted(self.assigned.addresses.items())]
        out += [(False, f"Service {name}: no LoadBalancer IP assigned (pool exhausted, or "
                        "MetalLB's controller not running?)") for name in self.assigned.pending]
        if not out:
            out.append((False, "no Service of type LoadBalancer in the cluster: run "
                               "`inv metallb` (it creates the demo's)"))
        return out


def check_plan(ctx: HostContext) -> Plan:
    """Router hosts: sessions and routes; client hosts: the service answering."""
    addresses = [str(a) for a in ctx.options.get("addresses", ())]
    plan = Plan()
    client = bool(ctx.options.get("from_router")) or "client" in ctx.host.roles
    if not addresses and ("router" in ctx.host.roles or client):
        assigned = from_cluster(ctx)
        plan.add(AssignedHealth(ctx, assigned))
        addresses = assigned.all()
    if "router" in ctx.host.roles:
        try:
            site = site_plan(ctx.inventory)
            router = site.router(ctx.host.name)
        except (PlanError, KeyError) as exc:
            raise StepFailed(f"{ctx.host.name}: not a router of the metallb section ({exc})"
                             ) from None
        if router.kind not in ("frr", "bird"):
            raise StepFailed(f"{router.name} is {router.kind}: RouterOS has no shell; `inv "
                             "metallb.check` reads it over its own CLI, not in this runbook")
        nodes = [(n.name, str(n.address)) for n in site.nodes]
        plan.add(RouterHealth(ctx, router.kind, nodes, addresses))
    if addresses and client:
        plan.add(ClientHealth(ctx, addresses))
    return plan


CHECK = Runbook("metallb.check", ("router", "client"), check_plan)
