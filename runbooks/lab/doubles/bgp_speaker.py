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
import json
import shlex
from collections.abc import Mapping
from ipaddress import IPv4Address, ip_network, summarize_address_range
from typing import Any

from runbooks.common.bgp import PlanError, site_plan
from runbooks.common.kubectl import kubectl_on_node
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import (
    Action,
    Change,
    File,
    Handler,
    Packages,
    Plan,
    Service,
    Step,
    StepFailed,
)
from runbooks.metallb.demo_hooks import NAMESPACE, objects_command
from runbooks.metallb.services import parse_services

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
                f"  neighbor {spec['peerAddress']} as {int(spec['peerASN'])};",
                # a router that comes back is peered with again within seconds (BIRD's
                # defaults wait 120 s), as MetalLB's speakers retry
                "  connect retry time 5;", "  error wait time 5, 30;"]
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


# -- the double as a runbook, for demo.rehearse on a lab inventory ------------------------------
#
# On a real site MetalLB's speaker DaemonSet does this; on the lab's nodes nothing runs the
# k3s double's pods, so demo.rehearse converges this runbook after metallb and router: it
# reads the objects greenroom applied and the LoadBalancer IPs MetalLB's controller assigned
# back from the cluster (its first server), then configures BIRD from them and binds every
# assigned IP on the node's lo (in BGP mode every node announces), with the web double behind
# it. It plans nothing on an inventory without a `lab:` section: never on a real site.

RESTART_BIRD = "restart bird (speaker double)"
RESTART_WEB = "restart web double"
PAGE = f"{WEB_ROOT}/index.html"


def cluster_state(ctx: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(MetalLB's objects, the assigned LoadBalancer IPs), read on the first server: the
    pools, peers and advertisements by the very listing metallb's demo.check probe reads (one
    kubectl for both in a check), the Secrets only when a peer names one (a password)."""
    cluster = ctx.inventory.sections["cluster"]
    server = ctx.inventory.hosts[cluster.first_server]
    kubectl = kubectl_on_node(cluster.distribution)
    session = ctx.connector.session(server)
    found: dict[str, Any] = {}
    reads = [("objects", objects_command(kubectl)),
             ("services", f"{kubectl} get services -A -o json")]
    while reads:
        key, command = reads.pop(0)
        done = session.run(command)
        if not done.ok:
            raise StepFailed(f"speaker double: {command} on {server.name} failed: "
                             f"{(done.stderr or done.stdout).strip()[-300:]} (run `inv "
                             "metallb` first)")
        try:
            found[key] = json.loads(done.stdout)
        except ValueError:
            raise StepFailed(f"speaker double: {command} on {server.name} did not print "
                             "JSON") from None
        if key == "objects" and any((p.get("spec") or {}).get("passwordSecret")
                                    for p in _kind(found[key].get("items") or [], "BGPPeer")):
            reads.append(("secrets", f"{kubectl} get secrets -n {NAMESPACE} -o json"))
    objects = list(found["objects"].get("items") or [])
    objects += (found.get("secrets") or {}).get("items") or []
    return objects, parse_services(found["services"]).all()


def lo_addresses(out: str) -> set[str]:
    """IPv4 addresses in `ip -4 -o addr show dev lo` output."""
    found: set[str] = set()
    for line in out.splitlines():
        words = line.split()
        found.update(words[i + 1].split("/")[0] for i, w in enumerate(words[:-1])
                     if w == "inet")
    return found


class BoundOnLo(Step):
    """Ensure exactly the assigned LoadBalancer IPs of the pools are bound on lo."""

    def __init__(self, wanted: list[str], networks: list[str]) -> None:
        self.wanted, self.networks = sorted(wanted), list(networks)
        self.name = f"Ensure LoadBalancer IPs on lo: {', '.join(self.wanted) or 'none'}"

    def facts(self) -> Mapping[str, str]:
        return {"lo": "ip -4 -o addr show dev lo"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        bound = lo_addresses(facts["lo"].out)
        nets = [ip_network(n) for n in self.networks]
        stale = sorted(a for a in bound if a not in self.wanted
                       and any(IPv4Address(a) in n for n in nets))
        changes = [Change(f"bind {a}/32 on lo", (Action(f"ip addr add {a}/32 dev lo"),))
                   for a in self.wanted if a not in bound]
        changes += [Change(f"unbind {a}/32 from lo", (Action(f"ip addr del {a}/32 dev lo"),))
                    for a in stale]
        return changes


def web_unit() -> str:
    """The web double (the LoadBalancer Services' pods): port 80 on every address."""
    return ("[Unit]\nDescription=greenroom lab DOUBLE of the LoadBalancer Services' pods\n"
            f"[Service]\nExecStart=/usr/bin/python3 -m http.server --bind 0.0.0.0 "
            f"--directory {WEB_ROOT} 80\n"
            "Restart=always\nRestartSec=1\n[Install]\nWantedBy=multi-user.target\n")


def wait_established(peers: int) -> str:
    """Shell: wait up to 30 s until `peers` BGP sessions are Established."""
    return (f"for i in $(seq 30); do [ \"$(birdc show protocols | grep -c Established)\" -ge "
            f"{peers} ] && exit 0; sleep 1; done; birdc show protocols >&2; exit 1")


def plan(ctx: Any) -> Plan:
    """The speaker double's steps on one cluster node of a lab inventory."""
    inventory = ctx.inventory
    if "lab" not in (inventory.sections or {}) or "cluster" not in (inventory.sections or {}):
        return Plan()  # a real site: MetalLB's own speaker does this
    try:
        site = site_plan(inventory)
    except PlanError:
        return Plan()  # no BGP-mode metallb section: nothing to announce
    node = next((n for n in site.nodes if n.name == ctx.host.name), None)
    if node is None:
        raise StepFailed(f"{ctx.host.name}: not a cluster node with a VLAN address")
    objects, assigned = cluster_state(ctx)
    try:
        config = render_config(node.name, str(node.address), objects)
    except SpeakerDoubleError as exc:
        raise StepFailed(f"speaker double: {exc}") from None
    peers = len(_kind(objects, "BGPPeer"))
    restart = f"systemctl restart {UNIT} && {wait_established(peers)}"
    secret = "password" in config  # MetalLB's BGP password: only bird (its owner) reads it
    return Plan(steps=[
        Packages([PACKAGE]),
        File(CONFIG, config, mode="600" if secret else "640", owner="bird", group="bird",
             validate="bird -p -c {}", secret=secret, notify=[RESTART_BIRD]),
        Service(UNIT, enabled=True, running=True, notify=[RESTART_BIRD]),
        BoundOnLo(assigned, advertised_networks(objects)),
        File(PAGE, f"greenroom demo, served by {node.name}\n"),
        File(f"/etc/systemd/system/{WEB_UNIT}.service", web_unit(), notify=[RESTART_WEB]),
        Service(WEB_UNIT, enabled=True, running=True),
    ], handlers=[Handler(RESTART_BIRD, restart),
                 Handler(RESTART_WEB, f"systemctl daemon-reload && systemctl restart {WEB_UNIT}")])


RUNBOOK = Runbook("metallb-speaker (lab double)", ("k3s-server", "k3s-agent"), plan)
