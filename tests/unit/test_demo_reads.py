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


CLUSTER = "k3s kubectl get nodes,namespaces,deployments,daemonsets,endpoints,services -A -o json"
METALLB = "k3s kubectl get ipaddresspools,bgppeers,secrets -n metallb-system -o json"
APP = ("k3s kubectl get namespace/greenroom-demo deployment.apps/hello service/hello "
       "-n greenroom-demo --ignore-not-found -o json")


@pytest.mark.parametrize("wide, narrow, covered", [
    (CLUSTER, "k3s kubectl get services -A -o json", True),
    (CLUSTER, "k3s kubectl get services,endpoints -A -o json", True),
    (CLUSTER, CLUSTER, False),
    (CLUSTER, "k3s kubectl get services -n demo -o json", False),  # another scope
    (CLUSTER, "microk8s kubectl get services -A -o json", False),  # another kubectl
    (CLUSTER, "k3s kubectl get pods -A -o json", False),  # a kind it does not list
    (CLUSTER, "k3s kubectl get nodes -o json", True),  # no namespace: -A lists them all
    (CLUSTER, "k3s kubectl get services -o json", False),  # the default namespace's only
    (CLUSTER, "k3s kubectl get deployment controller -n metallb-system -o json", True),
    (CLUSTER, "k3s kubectl get endpoints hook -n metallb-system -o json", True),
    (CLUSTER, "k3s kubectl get secret bgp -n metallb-system -o json", False),
    (CLUSTER, "microk8s kubectl get deployment controller -n metallb-system -o json", False),
    (CLUSTER, "k3s kubectl get deployment controller -n metallb-system", False),  # not JSON
    (METALLB, "k3s kubectl get deployment controller -n metallb-system -o json", False),
    (CLUSTER, "k3s kubectl get services -A", False),  # not JSON
    (CLUSTER, "k3s kubectl get services/web -A -o json", False),  # one object
    (METALLB, "k3s kubectl get ipaddresspools -n metallb-system -o json", True),
    (METALLB, "k3s kubectl get ipaddresspools -A -o json", False),
    # a Manifests step's read of named objects (runbooks/common/kubectl.py)
    (CLUSTER, APP, True),
    (CLUSTER, APP.replace("k3s kubectl", "microk8s kubectl"), False),
    (CLUSTER, APP.replace("service/hello", "secret/hello"), False),  # a kind it does not list
    (CLUSTER, APP.replace("deployment.apps/", "deployment.extensions/"), False),
    (CLUSTER, APP.replace(" --ignore-not-found", ""), False),  # NotFound fails: read alone
    (METALLB, APP, False),
    ("k3s kubectl get deployments,services -n greenroom-demo -o json",
     APP.replace("namespace/greenroom-demo ", ""), True),
    ("k3s kubectl get deployments,services,namespaces -n greenroom-demo -o json", APP,
     False),  # a cluster-scoped object under a namespaced listing: not taken from it
], ids=lambda v: str(v)[:48])
def test_which_listing_a_wider_one_covers(wide, narrow, covered):
    assert covers(wide, narrow) is covered


def test_a_named_object_and_the_nodes_are_cut_from_the_wide_read():
    from runbooks.core.session import CommandResult
    from runbooks.demo.reads import cut

    items = [{"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "controller", "namespace": "metallb-system"}},
             {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "controller", "namespace": "other"}},
             {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "rp0"}}]
    done = CommandResult(0, json.dumps({"kind": "List", "items": items}), "")
    one = cut(done, "k3s kubectl get deployment controller -n metallb-system -o json")
    assert one is not None and json.loads(one.stdout) == items[0]
    nodes = cut(done, "k3s kubectl get nodes -o json")
    assert nodes is not None and json.loads(nodes.stdout)["items"] == [items[2]]
    # not there: read on its own, so it answers as the cluster does (NotFound, rc 1)
    assert cut(done, "k3s kubectl get deployment speaker -n metallb-system -o json") is None
    assert cut(CommandResult(1, "", "refused"),
               "k3s kubectl get deployment controller -n metallb-system -o json") is None


def test_a_manifests_read_is_cut_from_the_wide_read_as_kubectl_lists_what_it_finds():
    from runbooks.core.session import CommandResult
    from runbooks.demo.reads import cut

    def obj(version, kind, name, namespace=None):
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        return {"apiVersion": version, "kind": kind, "metadata": meta}

    space = obj("v1", "Namespace", "greenroom-demo")
    hello = obj("apps/v1", "Deployment", "hello", "greenroom-demo")
    items = [obj("v1", "Node", "rp0"), obj("v1", "Service", "hello", "other"), hello,
             obj("extensions/v1beta1", "Deployment", "hello", "greenroom-demo"), space]
    done = CommandResult(0, json.dumps({"kind": "List", "items": items}), "")
    found = cut(done, APP)
    # the Service is in another namespace only: missing, as --ignore-not-found leaves it out
    assert found is not None and json.loads(found.stdout)["items"] == [space, hello]
    assert cut(CommandResult(1, "", "refused"), APP) is None


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
    nodes, pods = "k3s kubectl get nodes -o json", "k3s kubectl get pods -A -o json"
    assert reads.claimed("rp0", [pools, nodes, pods]) == {
        CLUSTER, "k3s kubectl get services -A -o json", METALLB, pools, nodes}
    found = json.loads(reads.fact(rp0, pools).out)
    assert [i["kind"] for i in found["items"]] == ["IPAddressPool"]
    assert server.ran == [CLUSTER, METALLB]
    # a Manifests step's read of named objects the wide read lists: no kubectl of its own
    assert reads.claimed("rp0", [APP]) >= {APP}
    found = json.loads(reads.fact(rp0, APP).out)
    assert found["kind"] == "List" and found["items"] == []  # none of them in this cluster
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


def test_a_test_of_the_kubectl_link_is_no_cluster_read_of_its_own():
    """k3s's plan asks whether /usr/local/bin/kubectl links to k3s: a file test, read in the
    shell lane, not a channel of its own beside the cluster reads."""
    from runbooks.demo.check import lanes

    link = '( [ "$(readlink /usr/local/bin/kubectl)" = k3s ] )'
    commands = {"clock": "date +%s", "link": link, "nodes": "k3s kubectl get nodes -o json",
                "stdin": "printf '%s' x | k3s kubectl get -f - -o name"}
    assert lanes(commands) == [{"clock": "date +%s", "link": link},
                               {"nodes": "k3s kubectl get nodes -o json"},
                               {"stdin": "printf '%s' x | k3s kubectl get -f - -o name"}]


def test_a_long_batch_is_cut_into_lanes_read_at_the_same_time():
    """The gateway's ~50 plan facts ran one after another in one shell: its critical path."""
    from runbooks.demo.check import PER_LANE, SHELL_LANES, lanes

    commands = {"clock": "date +%s"}
    commands.update({f"unit{n}": f"systemctl is-active unit{n}" for n in range(47)})
    commands["again"] = "systemctl is-active unit46"  # asked twice: one lane, runs once
    commands.update({f"file{n}": f"@greenroom-file:/etc/f{n}" for n in range(6)})
    commands.update({"swaps": "cat /proc/swaps", "os": "cat /etc/os-release"})
    commands["k"] = "k3s kubectl get nodes -o json"
    batches = lanes(commands)
    shell = [b for b in batches if not any("kubectl" in c for c in b.values())]
    assert len(shell) == SHELL_LANES
    assert "clock" in shell[0]  # the clock's reference moment is the first lane's
    # one stat and one grep for the lot (a plain cat in another lane: a stat and a grep more)
    assert all(k in shell[0] for k in [*(f"file{n}" for n in range(6)), "swaps", "os"])
    assert [k for b in batches for k in b if b.get(k) == "systemctl is-active unit46"] == [
        "unit46", "again"]
    assert next(b for b in batches if "again" in b) is next(b for b in batches if "unit46" in b)
    assert all(len([c for c in b.values() if not c.startswith(("@", "cat "))]) >= PER_LANE
               for b in shell)
    assert {k: c for b in batches for k, c in b.items()} == commands
    assert batches[-1] == {"k": "k3s kubectl get nodes -o json"}
    # a short batch stays one lane
    few = {f"u{n}": f"systemctl is-active u{n}" for n in range(PER_LANE * 2 - 1)}
    assert lanes(few) == [few]


def test_reading_a_long_batch_opens_one_channel_per_lane():
    import subprocess

    from runbooks.core.session import CommandResult
    from runbooks.demo.check import SHELL_LANES, _read

    class Session:  # each run a channel of the host's one connection; here a local sh
        def __init__(self):
            self.scripts = []

        def run(self, script, stdin=None):
            self.scripts.append(script)
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
            return CommandResult(done.returncode, done.stdout, done.stderr)

    session = Session()
    commands = {f"u{n}": f"echo unit{n}" for n in range(50)}
    facts, _moment = _read(session, commands)
    assert len(session.scripts) == SHELL_LANES
    assert {k: (f.rc, f.out) for k, f in facts.items()} == {
        f"u{n}": (0, f"unit{n}\n") for n in range(50)}
    assert sum(s.count("echo unit") for s in session.scripts) == 50


def test_the_first_servers_check_starts_one_kubectl_for_nodes_namespaces_and_named_objects(
        tmp_path, monkeypatch):
    """k3s's nodes, MetalLB's controller, demo's leftover namespace: all cut from the one
    cluster read (a kubectl process each before: in the lab a Python start of the double,
    on a Pi 0.3-0.5 s each)."""
    import subprocess

    from runbooks.core.runner import Runbook
    from runbooks.core.session import CommandResult
    from runbooks.core.steps import Plan
    from runbooks.core.steps.base import Command
    from runbooks.demo import check
    from runbooks.demo.planning import Hints
    from runbooks.demo.workloads import NamespaceGone

    controller = "k3s kubectl get deployment controller -n metallb-system -o json"
    nodes = "k3s kubectl get nodes -o json"

    class Rp0:
        def __init__(self):
            self.kubectl, self.batches = [], []

        def run(self, command, stdin=None):
            if command.startswith("k3s kubectl"):
                self.kubectl.append(command)
                items = [{"kind": "Node", "metadata": {"name": "rp0"}},
                         {"kind": "Namespace", "metadata": {"name": "default"}},
                         {"kind": "Deployment", "metadata": {
                             "name": "controller", "namespace": "metallb-system"}}]
                return CommandResult(0, json.dumps({"kind": "List", "items": items}), "")
            self.batches.append(command)
            done = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True,
                                  text=True, check=False)
            return CommandResult(done.returncode, done.stdout, done.stderr)

    class Probe:
        roles = ("k3s-server",)
        seen: dict = {}

        def facts(self, host, inventory):
            return {"k3s/nodes": nodes, "cluster": CLUSTER}  # the narrower one first

        def evaluate(self, host, inventory, found):
            Probe.seen = dict(found)
            return []

    def plan(ctx):
        return Plan().add(NamespaceGone("k3s kubectl", "podinfo"),
                          Command("Controller there", "true", unless=controller))

    monkeypatch.setattr(check.clock, "probe_facts", lambda inventory: {})
    monkeypatch.setattr(check.clock, "probe_judge", lambda *args: (None, []))
    rp0 = Rp0()
    host = SimpleNamespace(name="rp0", roles=("k3s-server",))
    inventory = SimpleNamespace(hosts={"rp0": host}, sections={}, site="unit")
    connector = SimpleNamespace(session=lambda h: rp0)
    report = check.check_host(host, inventory, connector, lambda _t: None,
                              [("k3s", Probe())],
                              [("leftover", Runbook("cluster", ("k3s-server",), plan))],
                              SharedReads(connector), Hints(tmp_path / "hints.json"))
    assert rp0.kubectl == [CLUSTER]
    assert not any("kubectl" in b for b in rp0.batches)
    assert [i["kind"] for i in json.loads(Probe.seen["k3s/nodes"].out)["items"]] == ["Node"]
    assert next(v for v in report.verdicts if v.source == "cluster").ok  # nothing left over


@pytest.mark.parametrize("size", [pytest.param(3, id="one-lane"),
                                  pytest.param(60, id="three-lanes")])
def test_the_clock_is_read_last_in_the_first_lane_and_its_answer_is_the_reference(
        size, monkeypatch):
    """The clock's offset is the host's time minus this machine's at the moment the host read
    it. Read last in its batch, that moment is when the batch's answer arrives; taken as the
    middle of the round trip, a batch of a second read its host half a second behind (the
    lab's guests, on this machine's own clock, showed -0.3 to -0.6 s)."""
    import re
    import subprocess

    from runbooks.core.session import CommandResult
    from runbooks.demo import check, clock

    lane = threading.local()  # each lane's thread its own clock: 1000.0 when it starts
    monkeypatch.setattr(check.time, "time", lambda: getattr(lane, "now", 1000.0))

    class Session:  # a host whose every batch takes 1.5 s; here a local sh
        def __init__(self):
            self.scripts = []

        def run(self, script, stdin=None):
            self.scripts.append(script)
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
            lane.now = getattr(lane, "now", 1000.0) + 1.5
            return CommandResult(done.returncode, done.stdout, done.stderr)

    commands = {clock.LAST: "echo clock", "demo.sync": "echo sync"}
    commands.update({f"u{n}": f"echo unit{n}" for n in range(size)})
    commands["f"] = "@greenroom-file:/etc/hostname"
    session = Session()
    facts, moment = check._read(session, commands)
    assert facts[clock.LAST].out == "clock\n"
    assert len(session.scripts) == (1 if size < 10 else 3)
    assert moment == 1001.5  # the first lane's answer's arrival, not the middle of its trip
    first = next(s for s in session.scripts if "echo clock" in s)
    echoes = re.findall(r"echo (\w+)", first)
    assert echoes[-1] == "clock" and "sync" in echoes  # after every other command of its lane


@pytest.mark.parametrize(("command", "own"), [
    ("[ -e /etc/rpi-issue ]", True),
    ("test -e /var/lib/greenroom-demo/microvms", True),
    ("command -v containerd || [ -d /etc/containerd ]", True),
    ("[ -e /etc/docker/daemon.json ] || command -v dockerd || command -v docker", True),
    ("command -v ifup >/dev/null && [ -f /etc/network/interfaces ]", True),
    ("! [ -d /run/systemd/system ]", True),
    ("command -v nmcli >/dev/null && systemctl is-active --quiet NetworkManager", False),
    ('[ -n "$(ip -4 route show to exact 192.168.30.0/24)" ]', False),
    ("[ -e /a ]; rm -rf /b", False),
    ("test -e /a | sh", False),
    ("cat /proc/swaps", False),
], ids=["bracket", "test", "command-v-or-dir", "three", "quiet-and", "negated",
        "then-systemctl", "command-substitution", "then-another", "piped", "cat"])
def test_tests_the_shell_answers_itself(command, own):
    from runbooks.demo.check import shells_own

    assert shells_own(command) is own


def test_the_shells_own_tests_make_no_lane_longer():
    """A board's batch: 30 commands that start a process and 14 tests the shell answers
    itself are two lanes (they were three: one channel, one login shell and one sh more),
    the tests spread among them in order."""
    from runbooks.demo.check import PER_LANE, lanes, shells_own

    commands = {f"p{n}": f"ip -o link show dev eth{n}" for n in range(30)}
    commands.update({f"t{n}": f"[ -e /etc/marker{n} ]" for n in range(14)})
    batches = lanes(commands)
    assert len(batches) == 2
    assert {k: c for b in batches for k, c in b.items()} == commands
    assert all(len([c for c in b.values() if not shells_own(c)]) >= PER_LANE for b in batches)
