"""The FRR side (Linux and OpenWrt routers): frr.conf rendered from the site's BGP plan.

One `router bgp` with a peer group for the cluster: one neighbor per cluster node (their
VLAN addresses from the inventory), the cluster's ASN, the BGP password when set. Routes are
accepted only inside the MetalLB pools (an explicit in-policy) and nothing is announced back
(an explicit deny-all out-policy); `no bgp ebgp-requires-policy` is stated as well, so a
router that learns nothing for want of a policy (frr#11962) cannot happen. ECMP over every
node that announces a LoadBalancer IP (`maximum-paths`).
"""

from __future__ import annotations

from runbooks.common.bgp import Router, SitePlan
from runbooks.core.templates import render
from runbooks.router.values import session_values

CONFIG = "/etc/frr/frr.conf"
DAEMONS = "/etc/frr/daemons"
# vtysh -C parses a file with every daemon's grammar and exits non-zero on an unknown command
VALIDATE = "vtysh -C -f {}"
PACKAGES = ("frr", "frr-pythontools")  # frr-pythontools: frr-reload.py, used by reload


def render_frr_conf(plan: SitePlan, router: Router, header: str,
                    password: str | None) -> str:
    """frr.conf for `router`: one neighbor per cluster node, pools as the only accepted routes."""
    return render("router/frr.conf.j2", hostname=router.name, ibgp=plan.metallb.ibgp,
                  **session_values(plan, router, header, password))


def daemons_with_bgpd(current: str | None) -> str | None:
    """/etc/frr/daemons with `bgpd=yes` (every other line kept); None while it is absent
    (the frr package creates it)."""
    if current is None:
        return None
    lines = current.splitlines()
    out: list[str] = []
    placed = False
    for line in lines:
        if line.split("=", 1)[0].strip() == "bgpd" and not line.lstrip().startswith("#"):
            if not placed:
                out.append("bgpd=yes")
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append("bgpd=yes")
    return "\n".join(out) + "\n"
