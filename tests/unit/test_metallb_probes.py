"""metallb's and router's demo.check probes, the LoadBalancer IPs read from a Services List,
and the lab's speaker double as a runbook (what it binds, and that it plans nothing on a
real site): pure, on the small BGP site of tests/unit/bgp_site.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from runbooks.core.facts import FactResult
from runbooks.demo import cluster as demo_cluster
from runbooks.lab.doubles import bgp_speaker
from runbooks.metallb import demo_hooks as metallb_probe
from runbooks.metallb.services import parse_services
from runbooks.router import demo_hooks as router_probe
from tests.unit.bgp_site import SITE, load_site


def ok(value: object) -> FactResult:
    return FactResult(0, value if isinstance(value, str) else json.dumps(value))


def svc(name: str, kind: str = "LoadBalancer", ips: tuple[str, ...] = ()) -> dict:
    return {"kind": "Service", "metadata": {"name": name, "namespace": "demo"},
            "spec": {"type": kind},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def test_services_assigned_pending_and_not_loadbalancers() -> None:
    found = parse_services({"items": [svc("web", ips=("192.168.20.1",)), svc("wait"),
                                      svc("inner", kind="ClusterIP"),
                                      svc("two", ips=("192.168.20.3", "192.168.20.2"))]})
    assert found.addresses == {"demo/web": ["192.168.20.1"],
                               "demo/two": ["192.168.20.3", "192.168.20.2"]}
    assert found.pending == ["demo/wait"]
    assert found.all() == ["192.168.20.1", "192.168.20.2", "192.168.20.3"]
    assert parse_services({}).all() == []


CLUSTER_SITE = SITE.replace("metallb:\n", "cluster: {version: v1.34.3+k3s1}\nmetallb:\n", 1) \
    .replace("roles: [pi]\n    vlan: {parent: eth0, address: 192.168.10.3/25}",
             "roles: [pi, k3s-server]\n    board: raspberrypi\n"
             "    vlan: {parent: eth0, address: 192.168.10.3/25}")


SUMMARY = {"ipv4Unicast": {"peers": {"192.168.10.3": {"state": "Established"},
                                     "192.168.10.4": {"state": "Active"}}}}
ROUTES = [{"dst": "192.168.20.1"}, {"dst": "10.0.0.0/8"}, {"dst": "default"},
          {"dst": "192.168.30.1"}]


@pytest.mark.parametrize(("sessions", "routes", "expected"), [
    pytest.param(SUMMARY, ROUTES, {"BGP session with rp0": (True, "Established"),
                                   "BGP session with rp1": (False, "Active"),
                                   "routes to LoadBalancer IPs": (True, "192.168.20.1")},
                 id="one-node-down-one-route-in-the-pools"),
    pytest.param({}, [{"dst": "192.168.30.1"}],
                 {"BGP session with rp0": (False, "missing"),
                  "BGP session with rp1": (False, "missing"),
                  "routes to LoadBalancer IPs": (False, "none learned from the cluster")},
                 id="bgpd-not-answering-and-a-route-outside-the-pools"),
])
def test_router_probe(sessions: dict, routes: list, expected: dict) -> None:
    inventory, _ = load_site(CLUSTER_SITE)
    edge = inventory.hosts["edge"]
    assert set(router_probe.facts(edge, inventory)) == {"router/sessions", "router/routes"}
    assert router_probe.facts(inventory.hosts["rp0"], inventory) == {}
    checks = router_probe.evaluate(edge, inventory, {"router/sessions": ok(sessions),
                                                     "router/routes": ok(routes)})
    assert {c.name: (c.ok, c.detail) for c in checks} == expected


def test_router_probe_reads_nothing_on_a_site_without_cluster() -> None:
    inventory, _ = load_site()
    assert router_probe.facts(inventory.hosts["edge"], inventory) == {}
    assert list(router_probe.evaluate(inventory.hosts["edge"], inventory, {})) == []


def test_metallb_probe_reads_the_first_server_only() -> None:
    inventory, _ = load_site(CLUSTER_SITE)
    assert metallb_probe.facts(inventory.hosts["rp1"], inventory) == {}
    facts = metallb_probe.facts(inventory.hosts["rp0"], inventory)
    # the controller, webhook and Services come from the cluster read demo.cluster shares
    assert facts == {
        "metallb/cluster": "k3s kubectl get nodes,namespaces,deployments,daemonsets,"
                           "endpoints,services -A -o json",
        "metallb/pools": "k3s kubectl get ipaddresspools,bgppeers,bgpadvertisements "
                         "-n metallb-system -o json"}
    assert facts["metallb/cluster"] in demo_cluster.facts(inventory.hosts["rp0"],
                                                          inventory).values()
    controller = {"kind": "Deployment", "metadata": {"name": "controller",
                                                     "namespace": "metallb-system"},
                  "status": {"conditions": [{"type": "Available", "status": "True"}]}}
    webhook = {"kind": "Endpoints", "metadata": {"name": "metallb-webhook-service",
                                                 "namespace": "metallb-system"},
               "subsets": []}
    found = {
        "metallb/cluster": ok({"kind": "List", "items": [
            controller, webhook, svc("hello", ips=("192.168.20.0",)), svc("late")]}),
        "metallb/pools": ok({"items": [
            {"kind": "IPAddressPool", "metadata": {"name": "default"}},
            {"kind": "BGPPeer", "metadata": {"name": "extra"}}]}),  # not a pool
    }
    checks = {c.name: (c.ok, c.detail) for c in metallb_probe.evaluate(
        inventory.hosts["rp0"], inventory, found)}
    assert checks == {
        "MetalLB controller Available": (True, "Available"),
        "MetalLB webhook endpoints": (False, "none: the webhook refuses pools and peers"),
        "MetalLB pools": (False, "missing: extra"),
        "LoadBalancer IP of demo/hello": (True, "192.168.20.0"),
        "LoadBalancer IP of demo/late": (False, "pending: no address assigned"),
    }


@pytest.mark.parametrize(("lo", "wanted", "changes"), [
    pytest.param("1: lo    inet 127.0.0.1/8 scope host lo\n", ["192.168.20.0"],
                 ["bind 192.168.20.0/32 on lo"], id="bind-a-new-ip"),
    pytest.param("1: lo    inet 127.0.0.1/8 scope host lo\n"
                 "1: lo    inet 192.168.20.0/32 scope global lo\n", ["192.168.20.0"], [],
                 id="converged"),
    pytest.param("1: lo    inet 127.0.0.1/8 scope host lo\n"
                 "1: lo    inet 192.168.20.5/32 scope global lo\n"
                 "1: lo    inet 10.9.9.9/32 scope global lo\n", [],
                 ["unbind 192.168.20.5/32 from lo"], id="stale-pool-ip-only-is-removed"),
])
def test_speaker_double_binds_exactly_the_assigned_ips(lo: str, wanted: list[str],
                                                       changes: list[str]) -> None:
    step = bgp_speaker.BoundOnLo(wanted, ["192.168.20.0/28"])
    assert [c.summary for c in step.plan({"lo": FactResult(0, lo)})] == changes


def test_speaker_double_plans_nothing_on_a_real_site() -> None:
    inventory, _ = load_site(CLUSTER_SITE)
    assert "lab" not in inventory.sections
    ctx = SimpleNamespace(inventory=inventory, host=inventory.hosts["rp0"])
    assert bgp_speaker.plan(ctx).steps == []


MK8S_SITE = SITE.replace(
    "metallb:\n", "cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns]}\n"
    "metallb:\n", 1).replace("roles: [pi]\n", "roles: [pi, microk8s]\n    board: raspberrypi\n")


def test_on_microk8s_the_seed_is_where_metallb_reads_the_cluster() -> None:
    """The probe, `metallb.check` and the runbook (cluster.first_server) on a microk8s cluster:
    its seed node, through `microk8s kubectl` (was an AttributeError on microk8s)."""
    from runbooks.metallb import services

    inventory, _ = load_site(MK8S_SITE)
    assert inventory.sections["cluster"].first_server == "rp0"
    assert metallb_probe.facts(inventory.hosts["rp1"], inventory) == {}
    assert metallb_probe.facts(inventory.hosts["rp0"], inventory)["metallb/cluster"] == \
        "microk8s kubectl get nodes,namespaces,deployments,daemonsets,endpoints,services -A -o json"
    asked: list[tuple[str, str]] = []

    class Session:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, command: str) -> SimpleNamespace:
            asked.append((self.name, command))
            return SimpleNamespace(ok=True, stdout=json.dumps({"items": [
                svc("hello", ips=("192.168.20.0",))]}), stderr="", rc=0)

    connector = SimpleNamespace(session=lambda host: Session(host.name))
    assert services.read(inventory, connector).all() == ["192.168.20.0"]
    assert asked == [("rp0", "microk8s kubectl get services -A -o json")]


class FirstServer:
    """The first server's session: answers the listings the speaker double asks."""

    def __init__(self, password: bool) -> None:
        self.ran: list[str] = []
        peer = {"kind": "BGPPeer", "metadata": {"name": "edge"}, "spec": {
            "peerAddress": "192.168.10.6", **({"passwordSecret": {"name": "bgp"}}
                                               if password else {})}}
        self.answers = {"ipaddresspools,bgppeers,bgpadvertisements": [peer],
                        "secrets": [{"kind": "Secret", "metadata": {"name": "bgp"}}],
                        "services": [svc("hello", ips=("192.168.20.0",))]}

    def run(self, command: str) -> SimpleNamespace:
        self.ran.append(command)
        kinds = command.split(" get ", 1)[1].split()[0]
        return SimpleNamespace(ok=True, stdout=json.dumps({"items": self.answers[kinds]}),
                               stderr="")


@pytest.mark.parametrize(("password", "reads"), [(False, 2), (True, 3)],
                         ids=["no-password-no-secrets", "password-secrets-read"])
def test_speaker_double_reads_the_probes_listing(password: bool, reads: int) -> None:
    """The lab's speaker double lists MetalLB's objects with the metallb probe's very
    command (a check starts one kubectl for both), and the Secrets only for a password."""
    inventory, _ = load_site(CLUSTER_SITE)
    server = FirstServer(password)
    ctx = SimpleNamespace(inventory=inventory,
                          connector=SimpleNamespace(session=lambda _host: server))
    objects, assigned = bgp_speaker.cluster_state(ctx)
    probe = metallb_probe.facts(inventory.hosts["rp0"], inventory)["metallb/pools"]
    assert server.ran[0] == probe and len(server.ran) == reads
    assert assigned == ["192.168.20.0"]
    assert [o["kind"] for o in objects] == ["BGPPeer"] + (["Secret"] if password else [])
