"""demo.check's cluster-wide parts, from recorded outputs (no host): the system pods probe
(runbooks/demo/cluster.py), the audience's path (runbooks/demo/path.py) and how a read-only
check-mode run becomes a verdict (runbooks/demo/check.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network
from types import SimpleNamespace

import pytest

from runbooks.common.bgp import Router
from runbooks.core import converge
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Health, Plan
from runbooks.demo import cluster, vip
from runbooks.demo.check import _dry_run, converge_parts
from runbooks.demo.path import PATH, path_plan
from runbooks.demo.verdict import HostReport


def host(name, *roles):
    return SimpleNamespace(name=name, roles=roles)


SITE = SimpleNamespace(hosts={h.name: h for h in (
    host("dell", "gateway"), host("rp0", "pi", "k3s-server"), host("rp1", "pi", "k3s-agent"),
    host("laptop", "client"))}, sections={})


def deployment(name, replicas, ready):
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": ready}}


def daemonset(name, wanted, ready):
    return {"kind": "DaemonSet", "metadata": {"name": name, "namespace": "kube-system"},
            "status": {"desiredNumberScheduled": wanted, "numberReady": ready}}


def listing(*items):
    return FactResult(0, json.dumps({"kind": "List", "items": list(items)}))


def test_system_pods_are_read_on_the_cluster_host_only():
    assert cluster.facts(SITE.hosts["rp0"], SITE) == {
        cluster.KEY: "k3s kubectl get nodes,namespaces,deployments,daemonsets,endpoints,"
                     "services -A -o json"}
    for name in ("rp1", "dell", "laptop"):
        assert cluster.facts(SITE.hosts[name], SITE) == {}
    micro = SimpleNamespace(hosts={"m0": host("m0", "microk8s")})
    assert cluster.facts(micro.hosts["m0"], micro)[cluster.KEY].startswith("microk8s kubectl ")


@pytest.mark.parametrize("fact, ok, says", [
    pytest.param(listing(deployment("coredns", 1, 1), deployment("metrics-server", 1, 1),
                         daemonset("svclb", 3, 3)), True, "3 of 3 kube-system workloads ready",
                 id="all-ready"),
    pytest.param(listing(deployment("coredns", 1, 0), deployment("metrics-server", 1, 1)),
                 False, "not ready: deployment/coredns (0/1 ready)", id="coredns-down"),
    pytest.param(listing(deployment("coredns", 2, 1), daemonset("svclb", 3, 2)), False,
                 "deployment/coredns (1/2 ready), daemonset/svclb (2/3 ready)",
                 id="partly-ready"),
    pytest.param(listing(deployment("coredns", 1, 1), {"kind": "Deployment", "metadata": {
        "name": "new", "namespace": "kube-system"}}),
                 False, "deployment/new (0/1 ready)", id="no-status-yet"),
    pytest.param(listing(deployment("coredns", 1, 1), {"kind": "Deployment", "metadata": {
        "name": "controller", "namespace": "metallb-system"}, "spec": {"replicas": 1}},
                         {"kind": "Service", "metadata": {"name": "kube-dns",
                                                          "namespace": "kube-system"}}),
                 True, "1 of 1 kube-system workloads ready", id="other-kinds-and-namespaces"),
    pytest.param(listing(), False, "no workloads in kube-system", id="empty"),
    pytest.param(FactResult(1, "The connection to the server 127.0.0.1:6443 was refused"),
                 False, "cannot read kube-system's workloads: The connection", id="api-down"),
    pytest.param(FactResult(0, "not json"), False, "cannot read", id="garbage"),
])
def test_system_pods(fact, ok, says):
    checks = list(cluster.evaluate(SITE.hosts["rp0"], SITE, {cluster.KEY: fact}))
    assert [(c.name, c.ok) for c in checks] == [("system pods", ok)]
    assert says in checks[0].detail
    assert bool(checks[0].fix) is not ok  # a fix is said exactly when it is wrong


def test_system_pods_say_nothing_where_not_read():
    assert list(cluster.evaluate(SITE.hosts["rp1"], SITE, {})) == []


@pytest.mark.parametrize("sections", [
    pytest.param({}, id="no-cluster"),
    pytest.param({"cluster": object()}, id="cluster-without-metallb"),
    pytest.param({"metallb": object()}, id="metallb-without-cluster"),
])
def test_path_plans_nothing_without_a_cluster_and_metallb(sections):
    ctx = SimpleNamespace(inventory=SimpleNamespace(sections=sections),
                          host=SITE.hosts["laptop"])
    assert path_plan(ctx).steps == []
    assert PATH.roles == ("client",)
    assert ("answers", PATH) in converge_parts()


class Answers(Health):
    """A read-only step like metallb's ClientHealth: one HTTP fetch per address."""

    def __init__(self, ctx, addresses):
        super().__init__(ctx, "Check the LoadBalancer IPs answer",
                         {a: f"curl http://{a}/" for a in addresses})
        self.addresses = addresses

    def evaluate(self, facts: Mapping[str, FactResult]) -> list[tuple[bool, str]]:
        return [(facts[a].ok, f"http://{a}/ answers" if facts[a].ok else
                 f"http://{a}/ does not answer") for a in self.addresses]


@pytest.mark.parametrize("answering, ok, detail", [
    pytest.param({"192.168.20.0", "192.168.20.1"}, True,
                 "http://192.168.20.0/ answers; http://192.168.20.1/ answers", id="all-answer"),
    pytest.param({"192.168.20.1"}, False, "http://192.168.20.0/ does not answer",
                 id="one-silent"),
])
def test_a_read_only_run_is_a_verdict_with_its_evidence(monkeypatch, answering, ok, detail):
    monkeypatch.setattr(converge, "gather", lambda _s, commands: {
        k: FactResult(0 if k.split("/", 1)[-1] in answering else 7, "") for k in commands})
    addresses = ["192.168.20.0", "192.168.20.1"]
    runbook = Runbook("demo.path", ("client",),
                      lambda ctx: Plan(steps=[Answers(ctx, addresses)]))
    report = HostReport("laptop", True)
    _dry_run(SITE.hosts["laptop"], SITE, None, None, "answers", runbook, report,
             lambda _text: None)
    [verdict] = report.verdicts
    assert (verdict.source, verdict.name, verdict.ok) == ("demo.path", "answers", ok)
    assert detail in verdict.detail
    assert "would change" not in verdict.detail and bool(verdict.fix) is not ok


def test_a_read_only_run_with_nothing_to_read_says_nothing():
    report = HostReport("laptop", True)
    _dry_run(SITE.hosts["laptop"], SITE, None, None, "answers",
             Runbook("demo.path", ("client",), lambda ctx: Plan()), report, lambda _t: None)
    assert report.verdicts == []


def cluster_site(distribution="k3s", vip="192.168.10.25"):
    return SimpleNamespace(hosts=SITE.hosts, sections={"cluster": SimpleNamespace(
        distribution=distribution, vip=vip)})


@pytest.mark.parametrize("site", [
    pytest.param(SITE, id="no-cluster"),
    pytest.param(cluster_site(vip=None), id="no-vip"),
    pytest.param(cluster_site("microk8s"), id="microk8s-no-vip-holder"),
])
def test_vip_is_read_only_for_k3s_with_a_vip(site):
    assert vip.facts(SITE.hosts["dell"], site) == {}
    assert list(vip.evaluate(SITE.hosts["dell"], site, {})) == []


@pytest.mark.parametrize("fact, ok, says", [
    pytest.param(FactResult(0, "200"), True, "HTTP 200", id="answers"),
    pytest.param(FactResult(7, "000"), False, "no answer (curl exit 7)", id="nobody-holds-it"),
    pytest.param(FactResult(28, "000"), False, "no answer (curl exit 28)", id="timeout"),
    pytest.param(FactResult(0, "503"), False, "HTTP 503", id="not-ready"),
])
def test_vip_answers(fact, ok, says):
    site = cluster_site()
    command = vip.facts(SITE.hosts["dell"], site)[vip.KEY]
    assert "https://192.168.10.25:6443/ping" in command
    [check] = vip.evaluate(SITE.hosts["dell"], site, {vip.KEY: fact})
    assert (check.name, check.ok) == ("VIP answers", ok)
    assert check.detail == f"https://192.168.10.25:6443/ping from dell: {says}"
    assert bool(check.fix) is not ok and (ok or "192.168.10.25" in check.fix)


@pytest.mark.parametrize("route, ok, says", [
    pytest.param(FactResult(0, "192.168.20.0 via 192.168.10.6 dev eth0 src 192.168.10.7 "
                               "uid 0 \n    cache \n"), True,
                 "route to 192.168.20.0 via edge (192.168.10.6)", id="via-the-router"),
    pytest.param(FactResult(0, "192.168.20.0 via 10.0.0.1 dev wlan0 src 10.0.0.5\n"), True,
                 "route to 192.168.20.0 via 10.0.0.1", id="via-another-gateway"),
    pytest.param(FactResult(0, "192.168.20.0 via 192.168.30.1 dev eth0 src 192.168.30.10\n"),
                 True, "route to 192.168.20.0 via edge (192.168.30.1)", id="via-the-routers-lan"),
    pytest.param(FactResult(0, "192.168.20.0 dev eth0 src 192.168.10.7 uid 0\n"), False,
                 "no route to 192.168.20.0 through a router (192.168.20.0 dev eth0 src "
                 "192.168.10.7 uid 0)", id="on-link"),
    pytest.param(FactResult(2, "RTNETLINK answers: Network is unreachable\n"), False,
                 "no route to 192.168.20.0 through a router (RTNETLINK answers: Network is "
                 "unreachable)", id="unreachable"),
])
def test_the_path_goes_through_a_router(route, ok, says):
    from runbooks.demo.path import RoutedHealth

    step = RoutedHealth(SimpleNamespace(log=lambda _t: None), ["192.168.20.0"], [EDGE])
    assert step.facts() == {"192.168.20.0": "ip -4 route get 192.168.20.0"}
    assert step.evaluate({"192.168.20.0": route}) == [(ok, says)]


EDGE = Router("edge", "frr", 64512, IPv4Address("192.168.10.6"),
              (IPv4Network("192.168.30.0/24"),))
ON_LAN = FactResult(0, "192.168.20.0 via 192.168.30.1 dev eth0 src 192.168.30.10 uid 0\n")
UP, DOWN = FactResult(0, "1 packets transmitted, 1 received"), FactResult(1, "0 received")
NO_WAY = ("no way back from the VLAN to 192.168.30.10: edge (192.168.10.6) answers it, the "
          "VLAN's gateway (192.168.10.2) does not; it needs a route to 192.168.30.0/24 via "
          "edge (`inv dell-gateway` adds it from lans.edge of the inventory)")


@pytest.mark.parametrize("route, router, gateway, ok, says", [
    pytest.param(FactResult(0, "192.168.20.0 via 192.168.10.6 dev eth0 src 192.168.10.7\n"),
                 DOWN, DOWN, True, "answers come straight back on the VLAN (192.168.10.7 is on "
                 "192.168.10.0/25; a client on a LAN behind the router proves the way back "
                 "too)", id="client-on-the-vlan"),
    pytest.param(ON_LAN, UP, UP, True, "answers come back through edge: 192.168.30.10 is on "
                 "192.168.30.0/24, not the VLAN, and the VLAN's gateway (192.168.10.2) answers "
                 "it", id="on-the-routers-lan"),
    pytest.param(ON_LAN, UP, DOWN, False, NO_WAY, id="gateway-has-no-route-back"),
    pytest.param(ON_LAN, DOWN, DOWN, False, "no way back from the VLAN to 192.168.30.10: edge "
                 "(192.168.10.6) and the VLAN's gateway (192.168.10.2) do not answer it; it "
                 "needs a route to 192.168.30.0/24 via edge (`inv dell-gateway` adds it from "
                 "lans.edge of the inventory)", id="router-silent-too"),
])
def test_the_answers_come_back_through_the_router(route, router, gateway, ok, says):
    from runbooks.demo.path import ReturnHealth

    step = ReturnHealth(SimpleNamespace(log=lambda _t: None), "192.168.20.0",
                        IPv4Network("192.168.10.0/25"), IPv4Address("192.168.10.2"), [EDGE])
    assert step.facts() == {"route": "ip -4 route get 192.168.20.0",
                            "ping 192.168.10.6": "ping -c 1 -W 2 -n -q 192.168.10.6",
                            "ping gateway": "ping -c 1 -W 2 -n -q 192.168.10.2"}
    facts = {"route": route, "ping 192.168.10.6": router, "ping gateway": gateway}
    assert step.evaluate(facts) == [(ok, says)]


def test_no_route_leaves_the_way_back_to_the_route_check():
    from runbooks.demo.path import ReturnHealth

    step = ReturnHealth(SimpleNamespace(log=lambda _t: None), "192.168.20.0",
                        IPv4Network("192.168.10.0/25"), None, [])
    assert step.evaluate({"route": FactResult(2, "RTNETLINK answers: unreachable")}) == []
