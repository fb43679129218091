"""DOUBLE of MetalLB's speaker for the virtual lab: real BGP sessions, no Kubernetes.

MetalLB cannot run without a cluster, so on lab nodes this stands in for its speaker (FRR
mode): Debian's BIRD (bird2), configured from the very objects greenroom rendered for the
cluster (`BGPPeer` v1beta2, `IPAddressPool`, `BGPAdvertisement`, and the Secret holding the
BGP password), the way MetalLB's FRR mode turns them into `router bgp` sections:
one session per BGPPeer from the node's address with `myASN`, `holdTime`, the password and
`ebgpMultiHop`; nothing imported; exported only /32s inside the advertised pools.

Which LoadBalancer IPs a node announces is what MetalLB decides from Services and their
endpoints; here it is whatever pool address is bound on the node's `lo`
(`bind_script`): BIRD's direct protocol announces it, and withdraws it when the address goes
or the speaker stops. `web_script` puts a small HTTP server on the IP (the "Service").
`nodeSelectors` are not modelled (every node peers with every BGPPeer).
Never installed on a real site: `inv metallb` installs the real MetalLB there.
"""

from __future__ import annotations

import base64
import shlex
from ipaddress import IPv4Address, ip_network, summarize_address_range
from typing import Any

CONFIG = "/etc/bird/bird.conf"
PACKAGE = "bird2"
UNIT = "bird"
WEB_UNIT = "greenroom-double-web"
WEB_ROOT = "/srv/greenroom-double-web"


class SpeakerDoubleError(ValueError):
    """The objects do not say what the double needs."""


def _kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def _hold(value: Any) -> int | None:
    if not value:
        return None
    text = str(value).strip()
    if text.endswith("s"):
        text = text[:-1]
    return int(float(text))


def _password(peer: dict[str, Any], objects: list[dict[str, Any]]) -> str | None:
    spec = peer.get("spec") or {}
    if spec.get("password"):
        return str(spec["password"])
    ref = spec.get("passwordSecret")
    if not ref:
        return None
    for secret in _kind(objects, "Secret"):
        if (secret.get("metadata") or {}).get("name") == ref.get("name"):
            if "stringData" in secret and "password" in secret["stringData"]:
                return str(secret["stringData"]["password"])
            data = (secret.get("data") or {}).get("password")
            if data:
                return base64.b64decode(data).decode()
    raise SpeakerDoubleError(f"BGPPeer {peer['metadata']['name']}: passwordSecret "
                             f"{ref.get('name')} is not among the objects")


def advertised_networks(objects: list[dict[str, Any]]) -> list[str]:
    """The networks of the pools a BGPAdvertisement names (all pools when it names none)."""
    pools = {p["metadata"]["name"]: p for p in _kind(objects, "IPAddressPool")}
    names: list[str] = []
    for adv in _kind(objects, "BGPAdvertisement"):
        wanted = (adv.get("spec") or {}).get("ipAddressPools") or list(pools)
        names += [n for n in wanted if n not in names]
    nets: list[str] = []
    for name in names:
        for spec in pools[name]["spec"]["addresses"]:
            if "-" in spec:
                first, _, last = spec.partition("-")
                found = summarize_address_range(IPv4Address(first.strip()),
                                                IPv4Address(last.strip()))
                nets += [str(n) for n in found]
            else:
                nets.append(str(ip_network(spec)))
    return sorted(set(nets))


def _name(text: str) -> str:
    return "peer_" + "".join(ch if ch.isalnum() else "_" for ch in text)


def render_config(node: str, node_address: str, objects: list[dict[str, Any]]) -> str:
    """bird.conf for one node from the rendered MetalLB objects."""
    peers = _kind(objects, "BGPPeer")
    if not peers:
        raise SpeakerDoubleError("no BGPPeer among the objects: nothing to peer with")
    nets = advertised_networks(objects)
    lines = [f"# greenroom lab DOUBLE of MetalLB's speaker on {node} (never on a real site)",
             f"router id {node_address};", "", "protocol device { }", "",
             "# LoadBalancer IPs this node announces: pool addresses bound on lo",
             'protocol direct lb_ips { ipv4; interface "lo"; }', "",
             "filter metallb_out {"]
    if nets:
        lines.append(f"  if net ~ [ {', '.join(n + '{32,32}' for n in nets)} ] then accept;")
    lines += ["  reject;", "}"]
    for peer in peers:
        spec = peer.get("spec") or {}
        if peer.get("apiVersion") != "metallb.io/v1beta2":
            raise SpeakerDoubleError(f"BGPPeer {peer['metadata']['name']}: expected "
                                     f"metallb.io/v1beta2, got {peer.get('apiVersion')}")
        body = [f"  local {node_address} as {int(spec['myASN'])};",
                f"  neighbor {spec['peerAddress']} as {int(spec['peerASN'])};"]
        hold = _hold(spec.get("holdTime"))
        if hold:
            body.append(f"  hold time {hold};")
        password = _password(peer, objects)
        if password:
            body.append(f'  password "{password}";')
        if spec.get("ebgpMultiHop"):
            body.append("  multihop;")
        body.append("  ipv4 { import none; export filter metallb_out; };")
        lines += ["", f"protocol bgp {_name(peer['metadata']['name'])} {{", *body, "}"]
    return "\n".join(lines) + "\n"


def install_script(config: str) -> str:
    """Shell (run as root in the node): install bird2, write the config (validated with
    `bird -p -c`), (re)start the speaker only when the config changed."""
    encoded = base64.b64encode(config.encode()).decode()
    return (
        "set -e\n"
        f"if ! command -v bird >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install "
        f"-y -q --no-install-recommends {PACKAGE} >/dev/null || {{ DEBIAN_FRONTEND="
        f"noninteractive apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -q --no-install-recommends {PACKAGE} >/dev/null; }}; fi\n"
        f"tmp=$(mktemp {CONFIG}.XXXXXX)\n"
        f"echo {encoded} | base64 -d > \"$tmp\"\n"
        "chown bird:bird \"$tmp\"; chmod 640 \"$tmp\"\n"
        "bird -p -c \"$tmp\"\n"
        f"if cmp -s \"$tmp\" {CONFIG} && systemctl is-active -q {UNIT}; then rm -f \"$tmp\"; "
        f"else mv \"$tmp\" {CONFIG}; systemctl enable -q {UNIT}; systemctl restart {UNIT}; fi\n"
    )


def bind_script(address: str, present: bool = True) -> str:
    """Bind (or unbind) a LoadBalancer IP on the node's lo: the speaker then announces it."""
    a = shlex.quote(f"{address}/32")
    if present:
        return f"ip addr show dev lo | grep -q ' {address}/32' || ip addr add {a} dev lo\n"
    return f"ip addr del {a} dev lo 2>/dev/null || true\n"


def web_script(address: str, page: str) -> str:
    """A small HTTP server on the LoadBalancer IP, port 80, serving `page` (a unit)."""
    unit = (f"[Unit]\nDescription=greenroom lab DOUBLE of a LoadBalancer Service's pods\n"
            f"[Service]\nExecStart=/usr/bin/python3 -m http.server --bind {address} "
            f"--directory {WEB_ROOT} 80\nRestart=always\nRestartSec=1\n")
    return (f"mkdir -p {WEB_ROOT}\nprintf '%s\\n' {shlex.quote(page)} > {WEB_ROOT}/index.html\n"
            f"printf '%s' {shlex.quote(unit)} > /etc/systemd/system/{WEB_UNIT}.service\n"
            f"systemctl daemon-reload\nsystemctl restart {WEB_UNIT}\n")
