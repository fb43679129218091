"""demo.check's VIP probe: the cluster's API answers on its virtual IP, seen from the gateway.

When the inventory sets `network.vip` and the cluster is k3s (greenroom renders kube-vip's
static pod on the servers then: runbooks/k3s/config.py), the leader server holds the VIP
on its VLAN interface and the API answers there; the gateway (role gateway, on the VLAN)
asks k3s's unauthenticated `/ping` on VIP:6443, in demo.check's one round trip to it.
Without a VIP, on microk8s (greenroom runs no VIP holder for it) or without a gateway host,
nothing is read.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.core.readonly import Check

ROLES = ("gateway",)
KEY = "demo.vip/ping"
PORT = 6443


def vip_of(inventory: Any) -> str | None:
    """The VIP a k3s cluster's servers hold (kube-vip), else None."""
    cluster = (getattr(inventory, "sections", None) or {}).get("cluster")
    if cluster is None or getattr(cluster, "distribution", "") != "k3s":
        return None
    vip = getattr(cluster, "vip", None)
    return str(vip) if vip else None


def facts(host: Any, inventory: Any) -> dict[str, str]:
    vip = vip_of(inventory)
    if vip is None:
        return {}
    url = shlex.quote(f"https://{vip}:{PORT}/ping")
    return {KEY: f"curl -ksS --connect-timeout 2 -m 4 -o /dev/null -w '%{{http_code}}' {url}"}


def evaluate(host: Any, inventory: Any, found: Mapping[str, Any]) -> Iterator[Check]:
    if KEY not in found:
        return
    vip = vip_of(inventory)
    result = found[KEY]
    code = result.out.strip()[-3:] if result.out else ""
    ok = result.ok and code == "200"
    said = (f"HTTP {code}" if code.isdigit() and code != "000" else
            f"no answer (curl exit {result.rc})")
    yield Check("VIP answers", ok,
                f"https://{vip}:{PORT}/ping from {host.name}: {said}",
                "" if ok else (f"kube-vip on the k3s servers holds {vip}: is k3s running on "
                               f"them (`systemctl status k3s`), and is {vip} on one server's "
                               "VLAN interface (`ip -4 addr`)? inv demo.reset restarts a "
                               "stopped k3s"))
