"""The cluster runbooks' inventory: the `cluster:` section (read by
runbooks.common.kube_cluster.read_cluster, or runbooks.common.microk8s_cluster.read_microk8s
for `distribution: microk8s`), the k3s nodes' `vars: {arch: ...}` and the microk8s nodes'
`vars: {worker: true}`."""

from __future__ import annotations

from typing import Any

from runbooks.common import microk8s_cluster
from runbooks.common.kube_cluster import AGENT, SERVER, read_cluster
from runbooks.core.inventory_schema import Field, SectionContext, register_section, register_vars


@register_section("cluster")
def _cluster(c: Any, value: Any, ctx: SectionContext) -> Any:
    if isinstance(value, dict) and value.get("distribution") == "microk8s":
        return microk8s_cluster.read_microk8s(c, value, ctx.hosts, ctx.network)
    return read_cluster(c, value, ctx.hosts, ctx.network)


NODE_VARS = {"arch": Field(str, "an architecture: amd64, arm64 or arm (armhf)")}
register_vars(SERVER, NODE_VARS)
register_vars(AGENT, NODE_VARS)
register_vars(microk8s_cluster.ROLE, {"worker": Field(bool, "true: join as a worker only "
                                                     "(no control plane)")})
