"""The BIRD side (bird2 on a Linux router): bird.conf rendered from the site's BGP plan.

One BGP protocol per cluster node from a shared template (the cluster's ASN, the password
when set), routes accepted only inside the MetalLB pools and exported to the kernel with
ECMP across the nodes; nothing announced back. Validated with `bird -p -c` before use.
"""

from __future__ import annotations

from runbooks.common.bgp import Router, SitePlan
from runbooks.core.templates import render
from runbooks.router.values import session_values

CONFIG = "/etc/bird/bird.conf"
VALIDATE = "bird -p -c {}"
PACKAGES = ("bird2",)


def render_bird_conf(plan: SitePlan, router: Router, header: str,
                     password: str | None) -> str:
    """bird.conf for `router`: one session per cluster node, pools as the only accepted routes."""
    return render("router/bird.conf.j2", **session_values(plan, router, header, password))
