"""demo.check's shared cluster reads (runbooks/demo/reads.py): which commands are shared, and
that a shared one runs once per host however many parts ask, at the same time or later."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from runbooks.common.kubectl import ON_NODE
from runbooks.core.facts import FactResult
from runbooks.demo.reads import KINDS, SharedReads, covers, listing, read_pattern, shareable


@pytest.mark.parametrize("command, shared", [
    ("k3s kubectl get services -A -o json", True),
    ("microk8s kubectl get nodes -o json", True),
    ("k3s kubectl get ipaddresspools,bgppeers -n metallb-system -o json", True),
    ("k3s kubectl delete namespace demo", False),
    ("k3s kubectl get ns demo >/dev/null 2>&1", False),
    ("k3s kubectl get pods -A -o json; rm -f /x", False),
    ("k3s kubectl get pods $(whoami)", False),
    ("k3s kubectl apply -f -", False),
    ("cat /etc/hostname", False),
], ids=lambda v: str(v)[:40])
def test_only_plain_kubectl_gets_are_shared(command, shared):
    assert shareable(command) is shared


def test_every_distributions_kubectl_is_shared_as_common_kubectl_names_it():
    for kubectl in ON_NODE.values():
        assert shareable(f"{kubectl} get nodes -o json"), kubectl
    # a distribution added to ON_NODE is recognised without touching demo
    pattern = read_pattern({"k0s": "k0s kubectl"})
    assert pattern.fullmatch("k0s kubectl get nodes -o json")
    assert pattern.fullmatch("kubectl get nodes")
    assert not pattern.fullmatch("k3s kubectl get nodes")
    assert not pattern.fullmatch("k0s kubectl get nodes; reboot")


class Session:
    def __init__(self) -> None:
        self.ran: list[str] = []
        self.lock = threading.Lock()

    def run(self, command, stdin=None):
        with self.lock:
            self.ran.append(command)
        time.sleep(0.05)  # the others ask meanwhile
        return SimpleNamespace(ok=True, rc=0, stdout=f"out of {command}", stderr="")


class Connector:
    def __init__(self) -> None:
        self.sessions = {"rp0": Session(), "rp1": Session()}

    def session(self, host):
        return self.sessions[host.name]

    def close_all(self) -> None:
        pass


def test_a_shared_read_runs_once_per_host_and_answers_every_asker_and_the_batch():
    connector = Connector()
    reads = SharedReads(connector)
    rp0, rp1 = SimpleNamespace(name="rp0"), SimpleNamespace(name="rp1")
    services = "k3s kubectl get services/web -n demo -o json"  # no wider read covers it
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _n: reads.session(rp0).run(services).stdout, range(6)))
    assert answers == [f"out of {services}"] * 6
    assert connector.sessions["rp0"].ran == [services]
    reads.session(rp1).run(services)  # another host's answer is its own
    reads.session(rp0).run("k3s kubectl delete ns demo")  # not shared: runs each time
    reads.session(rp0).run("k3s kubectl delete ns demo")
    assert connector.sessions["rp0"].ran == [services] + ["k3s kubectl delete ns demo"] * 2
    assert connector.sessions["rp1"].ran == [services]
    assert reads.answered("rp0") == {services: FactResult(0, f"out of {services}")}
    reads.close_all()  # everything else is the connector's


CLUSTER = "k3s kubectl get deployments,daemonsets,endpoints,services -A -o json"
METALLB = "k3s kubectl get ipaddresspools,bgppeers,secrets -n metallb-system -o json"


@pytest.mark.parametrize("wide, narrow, covered", [
    (CLUSTER, "k3s kubectl get services -A -o json", True),
    (CLUSTER, "k3s kubectl get services,endpoints -A -o json", True),
    (CLUSTER, CLUSTER, False),
    (CLUSTER, "k3s kubectl get services -n demo -o json", False),  # another scope
    (CLUSTER, "microk8s kubectl get services -A -o json", False),  # another kubectl
    (CLUSTER, "k3s kubectl get nodes -A -o json", False),
    (CLUSTER, "k3s kubectl get services -A", False),  # not JSON
    (CLUSTER, "k3s kubectl get services/web -A -o json", False),  # one object
    (METALLB, "k3s kubectl get ipaddresspools -n metallb-system -o json", True),
    (METALLB, "k3s kubectl get ipaddresspools -A -o json", False),
], ids=lambda v: str(v)[:48])
def test_which_listing_a_wider_one_covers(wide, narrow, covered):
    assert covers(wide, narrow) is covered


class Cluster(Session):
    """A first server whose listings answer JSON with the objects of the kinds asked."""

    OBJECTS = [{"kind": "Service", "metadata": {"name": "web"}},
               {"kind": "Deployment", "metadata": {"name": "coredns"}},
               {"kind": "IPAddressPool", "metadata": {"name": "default"}},
               {"kind": "Secret", "metadata": {"name": "memberlist"}}]

    def run(self, command, stdin=None):
        with self.lock:
            self.ran.append(command)
        kinds = {KINDS[k] for k in listing(command)[1]}
        items = [o for o in self.OBJECTS if o["kind"] in kinds]
        return SimpleNamespace(ok=True, rc=0, stdout=json.dumps({"items": items}), stderr="")


def test_a_listing_is_cut_from_a_wider_read_made_anyway_or_under_way():
    rp0 = SimpleNamespace(name="rp0")
    connector = SimpleNamespace(session=lambda h: server)
    server = Cluster()
    reads = SharedReads(connector)
    # the Services: from the cluster read demo's probes make on the server anyway
    found = json.loads(reads.session(rp0).run("k3s kubectl get services -A -o json").stdout)
    assert [i["metadata"]["name"] for i in found["items"]] == ["web"]
    assert server.ran == [CLUSTER]
    # a read under way covers the batch's narrower one: it is claimed, answered from it
    reads.start(rp0, METALLB)
    pools = "k3s kubectl get ipaddresspools -n metallb-system -o json"
    assert reads.claimed("rp0", [pools, "k3s kubectl get nodes -o json"]) == {
        CLUSTER, "k3s kubectl get services -A -o json", METALLB, pools}
    found = json.loads(reads.fact(rp0, pools).out)
    assert [i["kind"] for i in found["items"]] == ["IPAddressPool"]
    assert server.ran == [CLUSTER, METALLB]


def test_cluster_reads_are_spread_over_lanes_beside_the_rest():
    from runbooks.demo.check import lanes

    commands = {"clock": "date +%s", "disk": "df -P -k /",
                "a": "k3s kubectl get nodes -o json", "b": "k3s kubectl get nodes -o json",
                "c": "k3s kubectl get pods -A -o json", "d": "k3s kubectl get ns demo",
                "e": "microk8s kubectl get services -A -o json"}
    batches = lanes(commands, n=3)
    assert batches[0] == {"clock": "date +%s", "disk": "df -P -k /"}
    assert [sorted(b) for b in batches[1:]] == [["a", "b", "e"], ["c"], ["d"]]
    merged = {k: c for b in batches for k, c in b.items()}
    assert merged == commands
    assert lanes({"clock": "date +%s"}) == [{"clock": "date +%s"}]
