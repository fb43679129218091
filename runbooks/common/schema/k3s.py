"""The cluster runbooks' inventory: the `cluster:` section (read by
runbooks.common.kube_cluster.read_cluster) and the cluster nodes' `vars: {arch: ...}`."""

from __future__ import annotations

from typing import Any

from runbooks.common.kube_cluster import AGENT, SERVER, read_cluster
from runbooks.core.inventory_schema import Field, SectionContext, register_section, register_vars


@register_section("cluster")
def _cluster(c: Any, value: Any, ctx: SectionContext) -> Any:
    return read_cluster(c, value, ctx.hosts, ctx.network)


NODE_VARS = {"arch": Field(str, "an architecture: amd64, arm64 or arm (armhf)")}
register_vars(SERVER, NODE_VARS)
register_vars(AGENT, NODE_VARS)
