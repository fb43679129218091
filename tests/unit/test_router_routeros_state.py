"""RouterOS 6 and 7 BGP state as `inv metallb.check` reads it, from golden `print` text.

The golden files (tests/unit/golden/routeros/) are written in the layout RouterOS's manual
shows for `/routing bgp peer print status` (6), `/routing/bgp/session print` (7) and
`/ip route print detail where bgp`: wrapped continuation lines, flags, RouterOS 7's short
`.key` form. They are not captures from hardware (none here): the site is tests/unit/bgp_site
(nodes rp0 192.168.10.3 and rp1 192.168.10.4, LoadBalancer IP 192.168.20.1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.common import routeros_state as ros

GOLDEN = Path(__file__).parent / "golden" / "routeros"
NODES = [("rp0", "192.168.10.3"), ("rp1", "192.168.10.4")]


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_detail_layout_joins_wrapped_lines_and_expands_short_keys() -> None:
    entries = ros.parse_print(golden("ros7-session-print.txt"))
    assert [(e.index, e.flags) for e in entries] == [(0, "E"), (1, "E")]
    first = entries[0].values
    assert first["name"] == "metallb-rp0-1"
    assert (first["remote.address"], first["remote.as"]) == ("192.168.10.3", "64513")
    assert (first["local.address"], first["local.as"]) == ("192.168.10.6", "64512")
    assert first["input.filter"] == "metallb-in" and first["hold-time"] == "1m30s"


def test_terse_rows_and_comments() -> None:
    text = (';;; set by hand\n 0 X name=peer1 remote-as=64500\n'
            ' 1   name=metallb-rp0 comment=greenroom rule="if (dst in 10.0.0.0/8) { accept }"\n')
    entries = ros.parse_print(text)
    assert entries[0].flags == "X"
    assert entries[0].values == {"name": "peer1", "remote-as": "64500", "comment": "set by hand"}
    assert entries[1].values["rule"] == "if (dst in 10.0.0.0/8) { accept }"


@pytest.mark.parametrize("kind, sessions, routes, want", [
    pytest.param("routeros6", "ros6-peer-print-status.txt", "ros6-route-print.txt",
                 {"rp0": "Established", "rp1": "Established"}, id="v6-both-up"),
    pytest.param("routeros6", "ros6-peer-print-status-rp1-down.txt", "ros6-route-print.txt",
                 {"rp0": "Established", "rp1": "active"}, id="v6-rp1-active"),
    pytest.param("routeros7", "ros7-session-print.txt", "ros7-route-print.txt",
                 {"rp0": "Established", "rp1": "Established"}, id="v7-both-up"),
    pytest.param("routeros7", "ros7-session-print-rp1-down.txt",
                 "ros7-route-print-rp1-down.txt",
                 {"rp0": "Established", "rp1": "not established"}, id="v7-rp1-not-established"),
])
def test_sessions_by_node(kind: str, sessions: str, routes: str, want: dict[str, str]) -> None:
    assert ros.node_sessions(kind, golden(sessions), NODES) == want
    lines = ros.health(kind, NODES, ["192.168.20.1"], golden(sessions), golden(routes))
    assert lines[-1] == (True, "route to LoadBalancer IP 192.168.20.1")
    assert [ok for ok, _ in lines[:2]] == [s == "Established" for s in want.values()]


def test_a_node_without_any_session_is_missing() -> None:
    only_rp0 = golden("ros7-session-print.txt").split("\n 1 E")[0]
    assert ros.node_sessions("routeros7", only_rp0, NODES) == {"rp0": "Established",
                                                              "rp1": "missing"}


def test_a_disabled_v6_peer_is_not_established() -> None:
    text = golden("ros6-peer-print-status.txt").replace(' 2 E name="metallb-rp1"',
                                                         ' 2 XE name="metallb-rp1"')
    assert ros.node_sessions("routeros6", text, NODES)["rp1"] == "disabled"


@pytest.mark.parametrize("routes, address, routed", [
    pytest.param("ros6-route-print.txt", "192.168.20.1", True, id="v6-active"),
    pytest.param("ros6-route-print.txt", "192.168.20.2", False, id="v6-other-ip"),
    pytest.param("ros7-route-print-rp1-down.txt", "192.168.20.1", True, id="v7-one-path"),
    pytest.param("ros7-route-print.txt", "192.168.10.9", False, id="v7-not-in-pool"),
])
def test_routes_count_only_active_ones_covering_the_ip(routes: str, address: str,
                                                       routed: bool) -> None:
    lines = ros.health("routeros7", [], [address], "", golden(routes))
    assert lines == [(routed, f"route to LoadBalancer IP {address}"
                      + ("" if routed else ": none active from BGP"))]


def test_an_inactive_route_is_no_route() -> None:
    inactive = golden("ros6-route-print.txt").replace(" 0 ADb ", " 0  Db ")
    assert ros.active_routes(inactive) == []


def test_a_refusal_on_stdout_with_exit_0_is_an_error() -> None:
    with pytest.raises(ros.RouterOSRefused, match="bad command name"):
        ros.checked(lambda command: (0, "bad command name session (line 1 column 14)\n"),
                    "/routing/bgp/session print")
