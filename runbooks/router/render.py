"""One router's configuration as text, by kind (what `inv router --print` shows)."""

from __future__ import annotations

from typing import Any

from runbooks.common.bgp import Router, SitePlan
from runbooks.core.templates import managed_from
from runbooks.router import bird, frr, routeros


def render_for(site: SitePlan, router: Router, inventory: Any, password: str | None) -> str:
    """frr.conf, bird.conf or a RouterOS 6/7 script for `router`."""
    header = f"written by greenroom (inv router) for {managed_from(inventory)}"
    if router.kind == "frr":
        return frr.render_frr_conf(site, router, header, password)
    if router.kind == "bird":
        return bird.render_bird_conf(site, router, header, password)
    return routeros.render_script(site, router, header, password)
