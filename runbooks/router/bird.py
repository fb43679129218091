"""The BIRD side (bird2 on a Linux router): bird.conf rendered from the site's BGP plan.

One BGP protocol per cluster node from a shared template (the cluster's ASN, the password
when set), routes accepted only inside the MetalLB pools and exported to the kernel with
ECMP across the nodes; nothing announced back. Validated with `bird -p -c` before use.
"""

from __future__ import annotations

from runbooks.common.bgp import Router, SitePlan
from runbooks.core.templates import render

CONFIG = "/etc/bird/bird.conf"
VALIDATE = "bird -p -c {}"
PACKAGES = ("bird2",)
MAX_PATHS = 8


def render_bird_conf(plan: SitePlan, router: Router, header: str,
                     password: str | None) -> str:
    """bird.conf for `router`: one session per cluster node, pools as the only accepted routes."""
    metallb = plan.metallb
    if metallb.asn is None:
        raise ValueError("the metallb section has no cluster ASN")
    pools = sorted({str(net) for pool in metallb.pools for net in pool.networks()})
    return render("router/bird.conf.j2", header=header, router_id=router.address,
                  asn=router.asn, remote_as=metallb.asn, password=password,
                  hold_time=metallb.hold_time, nodes=list(plan.nodes), pools=pools,
                  max_paths=MAX_PATHS)

