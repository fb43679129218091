"""What frr.conf and bird.conf are both rendered with: one session per cluster node, the
pools as the only accepted routes."""

from __future__ import annotations

from typing import Any

from runbooks.common.bgp import Router, SitePlan

MAX_PATHS = 8


def session_values(plan: SitePlan, router: Router, header: str,
                   password: str | None) -> dict[str, Any]:
    """The template values the FRR and BIRD configurations share."""
    metallb = plan.metallb
    return {"header": header, "router_id": router.address, "asn": router.asn,
            "remote_as": metallb.cluster_asn(), "password": password,
            "hold_time": metallb.hold_time, "nodes": list(plan.nodes),
            "pools": sorted(str(net) for net in metallb.networks()), "max_paths": MAX_PATHS}
