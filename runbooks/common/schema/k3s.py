"""The cluster runbooks' inventory: the `cluster:` section (read by
runbooks.common.kube_cluster.read_cluster, or runbooks.common.microk8s_cluster.read_microk8s
for `distribution: microk8s`), the k3s nodes' `vars: {arch: ...}` and the microk8s nodes'
`vars: {worker: true}`. The readers are imported when an inventory has the section or hosts
that need it, not for every inventory read."""

from __future__ import annotations

from typing import Any

from runbooks.common.section_names import K3S_AGENT, K3S_SERVER, MICROK8S
from runbooks.core.inventory_schema import Field, SectionContext, register_section, register_vars


@register_section("cluster")
def _cluster(c: Any, value: Any, ctx: SectionContext) -> Any:
    if value is None and not any(K3S_SERVER in h.roles or K3S_AGENT in h.roles
                                 for h in ctx.hosts.values()):
        return None  # what read_cluster answers then, without importing it
    if isinstance(value, dict) and value.get("distribution") == "microk8s":
        from runbooks.common import microk8s_cluster

        return microk8s_cluster.read_microk8s(c, value, ctx.hosts, ctx.network)
    from runbooks.common.kube_cluster import read_cluster

    return read_cluster(c, value, ctx.hosts, ctx.network)


NODE_VARS = {"arch": Field(str, "an architecture: amd64, arm64 or arm (armhf)")}
register_vars(K3S_SERVER, NODE_VARS)
register_vars(K3S_AGENT, NODE_VARS)
register_vars(MICROK8S, {"worker": Field(bool, "true: join as a worker only "
                                         "(no control plane)")})
