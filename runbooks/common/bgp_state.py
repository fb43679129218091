"""Parsers of BGP state as routers print it (shared by `inv router` and `inv metallb.check`)."""

from __future__ import annotations

import json
from typing import Any


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
