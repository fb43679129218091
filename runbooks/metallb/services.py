"""The LoadBalancer IPs the cluster assigned, read from a server (for `inv metallb.check`).

`k3s kubectl get services -A -o json` (or microk8s's) on the cluster's first server, through
the run's connector; the parsing is pure. A Service of type LoadBalancer without an address
yet is "pending" (MetalLB has not given it one: no pool, pool exhausted, controller down).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.common.kubectl import kubectl_on_node
from runbooks.core.steps import StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext
    from runbooks.core.inventory import Inventory
    from runbooks.core.session import Connector



@dataclass
class Assigned:
    """Addresses by Service (`namespace/name`), and the Services still waiting for one."""

    addresses: dict[str, list[str]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return sorted({a for found in self.addresses.values() for a in found})


def parse_services(data: Any) -> Assigned:
    """From a `get services -o json` List: every LoadBalancer Service's ingress IPs."""
    out = Assigned()
    for item in (data or {}).get("items") or []:
        if (item.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        meta = item.get("metadata") or {}
        name = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
        ingress = ((item.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [str(i["ip"]) for i in ingress if i.get("ip")]
        if found:
            out.addresses[name] = found
        else:
            out.pending.append(name)
    return out


def from_cluster(ctx: HostContext) -> Assigned:
    """The site's LoadBalancer IPs, read on the cluster's first server (see `read`)."""
    return read(ctx.inventory, ctx.connector)


def read(inventory: Inventory, connector: Connector) -> Assigned:
    """The site's LoadBalancer IPs, read on the cluster's first server through `connector`;
    StepFailed saying why (and that --address works without the cluster) when they cannot
    be read."""
    cluster = (getattr(inventory, "sections", None) or {}).get("cluster")
    if cluster is None:
        raise StepFailed(f"{inventory.path} has no `cluster:` section to read the "
                         "LoadBalancer IPs from: pass them with --address")
    server = inventory.hosts[cluster.first_server]
    prefix = kubectl_on_node(cluster.distribution)
    try:
        done = connector.session(server).run(f"{prefix} get services -A -o json")
    except Exception as exc:  # noqa: BLE001 - any session error: say which host, what next
        raise StepFailed(f"cannot reach {server.name} to read the LoadBalancer IPs ({exc}); "
                         "pass them with --address") from None
    if not done.ok:
        detail = (done.stderr.strip() or done.stdout.strip())[-300:]
        raise StepFailed(f"{prefix} get services on {server.name} failed (exit {done.rc}): "
                         f"{detail}; pass the LoadBalancer IPs with --address") from None
    try:
        return parse_services(json.loads(done.stdout))
    except ValueError:
        raise StepFailed(f"{prefix} get services on {server.name} did not print JSON") from None
