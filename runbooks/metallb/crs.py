"""MetalLB's custom resources rendered from the inventory (pure: dicts ready for kubectl).

- one `IPAddressPool` (metallb.io/v1beta1) per pool of `metallb.pools`;
- mode bgp: one `BGPPeer` (metallb.io/v1beta2) per router in `metallb.peers` (myASN = the
  cluster's ASN, peerASN and peerAddress from the router host), its password in a Secret
  referenced by `passwordSecret` when `metallb.password` is set, and one `BGPAdvertisement`
  of every pool;
- mode l2: one `L2Advertisement` of every pool.
"""

from __future__ import annotations

from typing import Any

from runbooks.common.bgp import MetalLB, Router

NAMESPACE = "metallb-system"
ADVERTISEMENT = "greenroom"
SECRET_PREFIX = "greenroom-bgp-"
LABELS = {"app.kubernetes.io/managed-by": "greenroom"}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": dict(LABELS)}


def pools(metallb: MetalLB) -> list[dict[str, Any]]:
    """IPAddressPool objects, one per pool."""
    return [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": _meta(pool.name),
             "spec": {"addresses": list(pool.addresses), "autoAssign": True}}
            for pool in metallb.pools]


def bgp_peers(metallb: MetalLB, routers: dict[str, Router],
              with_password: bool) -> list[dict[str, Any]]:
    """BGPPeer objects (v1beta2), one per peer router."""
    out = []
    for name in metallb.peers:
        router = routers[name]
        spec: dict[str, Any] = {"myASN": metallb.asn, "peerASN": router.asn,
                                "peerAddress": str(router.address)}
        if metallb.hold_time:
            spec["holdTime"] = f"{metallb.hold_time}s"
        if with_password:
            spec["passwordSecret"] = {"name": SECRET_PREFIX + name, "namespace": NAMESPACE}
        out.append({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                    "metadata": _meta(name), "spec": spec})
    return out


def password_secrets(metallb: MetalLB, password: str) -> list[dict[str, Any]]:
    """The Secrets holding the BGP password (type basic-auth, key `password`)."""
    return [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
             "metadata": _meta(SECRET_PREFIX + name), "stringData": {"password": password}}
            for name in metallb.peers]


def advertisement(metallb: MetalLB) -> dict[str, Any]:
    """The BGPAdvertisement or L2Advertisement of every pool."""
    kind = "BGPAdvertisement" if metallb.mode == "bgp" else "L2Advertisement"
    return {"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": _meta(ADVERTISEMENT),
            "spec": {"ipAddressPools": [pool.name for pool in metallb.pools]}}


def render(metallb: MetalLB, routers: dict[str, Router],
           password: str | None = None) -> list[dict[str, Any]]:
    """Every object for the cluster, in apply order (Secrets before the peers using them)."""
    objects: list[dict[str, Any]] = []
    if metallb.mode == "bgp" and password:
        objects += password_secrets(metallb, password)
    objects += pools(metallb)
    if metallb.mode == "bgp":
        objects += bgp_peers(metallb, routers, with_password=bool(password))
    objects.append(advertisement(metallb))
    return objects
