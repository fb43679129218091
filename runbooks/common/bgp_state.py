"""BGP state as routers print it, as named facts with pure parsers (shared by `inv router`'s
demo probe and `inv metallb.check`)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from runbooks.core.facts import Fact, FactResult


def frr_sessions(summary: Any) -> dict[str, str]:
    """`vtysh -c 'show bgp summary json'` (parsed) -> {peer address: state}."""
    peers = ((summary or {}).get("ipv4Unicast") or {}).get("peers") or {}
    return {str(ip): str(info.get("state", "?")) for ip, info in peers.items()}


def bird_sessions(out: str) -> dict[str, str]:
    """`birdc show protocols` -> {protocol name: "Established" or BIRD's state (start, down,
    ...)} for the BGP protocols."""
    states: dict[str, str] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "BGP":
            states[fields[0]] = "Established" if "Established" in fields[4:] else fields[3]
    return states


def route_targets(out: str) -> set[str]:
    """`ip -j route show` output -> destinations (a /32 shows without its prefix)."""
    try:
        routes = json.loads(out or "[]")
    except ValueError:
        return set()
    return {str(r.get("dst", "")).removesuffix("/32") for r in routes}


def _frr_sessions(result: FactResult) -> dict[str, str]:
    try:
        return frr_sessions(json.loads(result.out or "{}"))
    except ValueError:
        return {}


# A router's BGP sessions by kind: FRR's by peer address, BIRD's by protocol name
BGP_SESSIONS: dict[str, Fact[dict[str, str]]] = {
    "frr": Fact("frr_bgp_sessions", "vtysh -c 'show bgp summary json'", _frr_sessions),
    "bird": Fact("bird_bgp_sessions", "birdc show protocols",
                 lambda result: bird_sessions(result.out)),
}


def kernel_routes(proto: str) -> Fact[set[str]]:
    """The destinations of the kernel routes a routing daemon installed (`proto bgp` for
    FRR, `proto bird` for BIRD)."""
    return Fact(f"routes_proto_{proto}", f"ip -j route show proto {shlex.quote(proto)}",
                lambda result: route_targets(result.out))


# The routes each kind of router installs for what it learned over BGP
BGP_ROUTES = {"frr": kernel_routes("bgp"), "bird": kernel_routes("bird")}


def node_states(kind: str, sessions: dict[str, str],
                nodes: list[tuple[str, str]]) -> dict[str, str]:
    """{node name: its session's state, "missing" when there is none} from a BGP_SESSIONS
    reading: FRR's are by peer address, BIRD's by protocol name (the node's, `-` -> `_`)."""
    if kind == "frr":
        return {name: sessions.get(address, "missing") for name, address in nodes}
    return {name: sessions.get(name.replace("-", "_"), "missing") for name, _ in nodes}
