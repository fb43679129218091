"""demo.check's shared cluster reads (runbooks/demo/reads.py): which commands are shared, and
that a shared one runs once per host however many parts ask, at the same time or later."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from runbooks.common.kubectl import ON_NODE
from runbooks.core.facts import FactResult
from runbooks.demo.reads import SharedReads, read_pattern, shareable


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
    services = "k3s kubectl get services -A -o json"
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
