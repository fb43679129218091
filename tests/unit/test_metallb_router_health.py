"""metallb.check on a Linux router: its sessions and routes, read through the shared BGP
facts (common.bgp_state), judged per node and per LoadBalancer IP."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runbooks.core.facts import FactResult
from runbooks.metallb.health import RouterHealth

NODES = [("rp-0", "192.168.10.30"), ("rp-1", "192.168.10.31")]
FRR = ('{"ipv4Unicast": {"peers": {"192.168.10.30": {"state": "Established"}, '
       '"192.168.10.31": {"state": "Active"}}}}')
BIRD = ("Name       Proto      Table      State  Since         Info\n"
        "rp_0       BGP        ---        up     12:00:00.000  Established\n"
        "rp_1       BGP        ---        start  12:00:00.000  Active\n")
ROUTES = '[{"dst": "192.168.20.1", "protocol": "bgp"}]'


@pytest.mark.parametrize(("kind", "sessions", "routes_command"), [
    ("frr", FRR, "ip -j route show proto bgp"),
    ("bird", BIRD, "ip -j route show proto bird"),
], ids=["frr", "bird"])
def test_sessions_by_node_and_routes_by_address(kind, sessions, routes_command):
    step = RouterHealth(SimpleNamespace(), kind, NODES, ["192.168.20.1", "192.168.20.2"])
    assert step.facts()["routes"] == routes_command
    verdicts = step.evaluate({"sessions": FactResult(0, sessions),
                              "routes": FactResult(0, ROUTES)})
    assert [ok for ok, _ in verdicts] == [True, False, True, False]
    assert verdicts[1][1].startswith("session with rp-1 (192.168.10.31): ")
    assert verdicts[3][1] == "route to LoadBalancer IP 192.168.20.2: none learned"


def test_a_router_that_answers_nothing_has_every_session_missing():
    step = RouterHealth(SimpleNamespace(), "frr", NODES, [])
    verdicts = step.evaluate({"sessions": FactResult(1, ""), "routes": FactResult(1, "")})
    assert verdicts == [(False, "session with rp-0 (192.168.10.30): missing"),
                        (False, "session with rp-1 (192.168.10.31): missing")]
