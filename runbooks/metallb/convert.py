"""`inv metallb.convert FILE`: a MetalLB ConfigMap (v0.12 and older, as in seeds 001 and 003)
turned into greenroom's `metallb:` inventory section.

MetalLB 0.13 replaced the ConfigMap with CRDs; greenroom describes both sides of BGP once in
the inventory. Peers become router hosts (found by address in a given inventory, else a stub
to complete), pools keep their names and addresses, `protocol: layer2` becomes `mode: l2`.
A password in the ConfigMap is never copied: the section names an environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_VERSION = "v0.14.9"
PASSWORD_ENV = "GREENROOM_BGP_PASSWORD"


class ConvertError(ValueError):
    """The file is not a MetalLB ConfigMap greenroom can convert; says what is wrong."""


@dataclass
class Converted:
    """The section (a mapping), router host stubs to add, and notes for the reader."""

    section: dict[str, Any]
    new_routers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """YAML to paste into an inventory, notes as comments."""
        out = [f"# {note}" for note in self.notes]
        out.append(yaml.safe_dump({"metallb": self.section}, sort_keys=False).rstrip())
        if self.new_routers:
            out.append("# routers the inventory lacks: add them under hosts: (and set kind)")
            out.append(yaml.safe_dump({"hosts": self.new_routers}, sort_keys=False).rstrip())
        return "\n".join(out) + "\n"


def _config_of(text: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    maps = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    if not maps:
        raise ConvertError("no ConfigMap in the file; give the metallb-system/config "
                           "ConfigMap (MetalLB 0.12 or older)")
    data = (maps[0].get("data") or {}).get("config")
    if not isinstance(data, str):
        raise ConvertError("the ConfigMap has no data.config text: is it MetalLB's "
                           "(namespace metallb-system, name config)?")
    config = yaml.safe_load(data) or {}
    if not isinstance(config, dict):
        raise ConvertError("data.config is not a mapping of peers and address-pools")
    return config


def convert(text: str, routers_by_address: dict[str, str] | None = None,
            version: str = DEFAULT_VERSION) -> Converted:
    """Convert ConfigMap `text`; `routers_by_address` maps known router addresses to hosts."""
    config = _config_of(text)
    routers_by_address = routers_by_address or {}
    pools = config.get("address-pools") or []
    if not pools:
        raise ConvertError("data.config has no address-pools: nothing to announce")
    protocols = {str(p.get("protocol", "")) for p in pools}
    if len(protocols) != 1 or not protocols <= {"bgp", "layer2"}:
        raise ConvertError(f"pools use protocols {sorted(protocols)}: greenroom runs one mode "
                           "per cluster (bgp or layer2); split the pools by hand")
    mode = "bgp" if protocols == {"bgp"} else "l2"
    result = Converted({"version": version, "mode": mode})
    result.notes.append(f"converted from a MetalLB ConfigMap; version {version} chosen (the "
                        "ConfigMap ended with v0.12): change it if you pin another")
    if mode == "bgp":
        peers = config.get("peers") or []
        my_asns = {int(p["my-asn"]) for p in peers if "my-asn" in p}
        if len(my_asns) > 1:
            raise ConvertError(f"peers use several my-asn values {sorted(my_asns)}: the cluster "
                               "has one ASN in greenroom")
        if my_asns:
            result.section["asn"] = my_asns.pop()
    result.section["pools"] = {}
    for index, pool in enumerate(pools):
        pool_name = str(pool.get("name") or f"pool{index}")
        result.section["pools"][pool_name] = [str(a) for a in pool.get("addresses") or []]
        if pool.get("avoid-buggy-ips"):
            result.notes.append(f"pool {pool_name}: avoid-buggy-ips dropped (IPAddressPool "
                                "avoidBuggyIPs is not set by greenroom): trim .0/.255 by hand")
        if pool.get("auto-assign") is False:
            result.notes.append(f"pool {pool_name}: auto-assign false dropped; greenroom's pools "
                                "are auto-assigned")
    if mode == "bgp":
        names: list[str] = []
        for peer in config.get("peers") or []:
            address = str(peer.get("peer-address"))
            name = routers_by_address.get(address)
            if name is None:
                name = "router-" + address.replace(".", "-")
                result.new_routers[name] = {
                    "address": address, "roles": ["router"],
                    "vars": {"kind": "frr", "asn": int(peer.get("peer-asn", 0))}}
            names.append(name)
            if peer.get("password"):
                result.section["password"] = {"env": PASSWORD_ENV}
                result.notes.append(f"the ConfigMap holds a BGP password: it is not copied; "
                                    f"export it as {PASSWORD_ENV} when you run greenroom")
            if peer.get("peer-port") not in (None, 179):
                result.notes.append(f"peer {address}: peer-port {peer['peer-port']} dropped")
        result.section["peers"] = names
    if config.get("bgp-communities") or any(p.get("bgp-advertisements") for p in pools):
        result.notes.append("bgp-advertisements / communities dropped: greenroom advertises "
                            "every pool with MetalLB's defaults")
    return result
