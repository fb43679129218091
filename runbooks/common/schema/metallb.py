"""The inventory's `metallb:` section and the `vars:` of hosts with role router.

The section's checks live in runbooks/common/bgp.py (`read_metallb`): pools outside the DHCP
range, the gateway, the VIP, every host's address and each other; ASNs; eBGP/iBGP; peers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runbooks.common.section_names import ASN_MAX, RESERVED_ASNS, ROUTER_KINDS
from runbooks.core.inventory_schema import Field, SectionContext, register_section, register_vars

if TYPE_CHECKING:
    from runbooks.common.bgp import MetalLB


@register_section("metallb")
def _read_metallb(c: Any, value: Any, ctx: SectionContext) -> MetalLB | None:
    if value is None:
        return None  # optional: a site without MetalLB (its reader is not imported)
    from runbooks.common.bgp import read_metallb

    return read_metallb(c, value, dict(ctx.hosts), ctx.network)


def _asn(value: Any) -> str | None:
    if value in RESERVED_ASNS:
        return (f"AS number {value} is reserved; use a private one: 64512-65534 or "
                "4200000000-4294967294")
    return None


register_vars("router", {
    "kind": Field(str, "the router's software", required=True, choices=ROUTER_KINDS),
    "asn": Field(int, "the router's AS number", required=True, low=1, high=ASN_MAX - 1,
                 check=_asn),
})
