"""demo.check and demo.reset with the lab's cluster (after test_demo.py's rehearsal).

hosts/lab.yaml's cluster: the k3s double on rp0 (server), rp1 and lp0 (agents), MetalLB's
objects in it, the speaker double (BIRD) on each node in BGP sessions with the router edge
(real FRR). Drift injected on the real hosts: a node's BGP speaker stopped (rp1), an agent's
k3s stopped (lp0; its node turns NotReady 40 s later, as a kubelet's would), a leftover demo
namespace in the cluster (the `demo: workloads:` section's `podinfo`), the pods behind the
LoadBalancer IP gone (the lab's web double stopped on every node) -> demo.check NO-GO naming
each, on the host where it is seen (the router for the session, the laptop behind it for
the LoadBalancer IP, rp0 for the node and the namespace); demo.reset fixes each and says GO
(BGP sessions Established again, every node Ready, the page answering); a second demo.reset
changes nothing; `--check` before it lists the changes and makes none. On the converged lab
every cluster check is green, the system pods too, and the VIP (hosts/lab.yaml's
network.vip, held on rp0's VLAN interface by the k3s double's kube-vip emulation) answers
the API from the gateway; with the VIP dropped from rp0, demo.check is NO-GO naming it.

The audience's seat (runbooks/demo/path.py): the client `audience` on edge's own LAN
(hosts/lab.yaml `lans:`), not on the VLAN, is answered through edge both ways: green when
converged (the nodes have no route of their own to its LAN: their answers go to dell, which
routes the LAN via edge); with every speaker stopped (edge withdraws the LoadBalancer IPs),
NO-GO naming the path check (the page does not answer); with dell's route to the LAN removed
as well, NO-GO naming it ("no way back") and dell's drift; demo.reset puts both back and
says GO.
"""

from __future__ import annotations

import json

import pytest

from runbooks.common.kubectl import node_status
from runbooks.demo import history
from runbooks.demo.tasks import check, reset
from tests.lab.test_demo import call, changed, failing, sh
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab
SERVER, AGENT, SPEAKER = "rp0", "lp0", "rp1"
NAMESPACE = "podinfo"  # hosts/lab.yaml: demo.workloads.namespaces
KUBECTL = "k3s kubectl"
NODES = ("rp0", "rp1", "lp0")
WEB = "greenroom-double-web"  # runbooks/lab/doubles/bgp_speaker.py: the Service's pods
VIP = "192.168.10.25"  # hosts/lab.yaml: network.vip
AUDIENCE, LAN, SEAT = "audience", "192.168.30.0/24", "192.168.30.10"  # hosts/lab.yaml


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    """The lab with its cluster after one demo.reset (a no-op after test_demo.py)."""
    tmp = tmp_path_factory.mktemp("demo-cluster")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history, "state_dir", lambda: tmp / "history")
        # the k3s runbook merges the lab's context into $KUBECONFIG: a temp one
        patch.setenv("KUBECONFIG", str(tmp / "kubeconfig"))
        code, data = call(reset, tmp, "converge")
        assert code == 0 and data["ok"], failing(data)
        yield lab


def checks(data):
    """{(host, source, name): detail} of every check in a report."""
    return {(h["host"], c["source"], c["name"]): c["detail"]
            for h in data["hosts"] for c in h["checks"]}


def node_ready(lab, node):
    done = lab.exec(SERVER, f"{KUBECTL} get node {node} -o json", timeout=20)
    return done.returncode == 0 and node_status(json.loads(done.stdout))["ready"]


def test_cluster_is_green_on_the_converged_lab(cluster, tmp_path):
    code, data = call(check, tmp_path, "check")
    assert code == 0 and failing(data) == set()
    seen = checks(data)
    assert seen[(SERVER, "k3s", "nodes Ready")] == "3 of 3"
    for node in ("rp0", "rp1", "lp0"):
        assert seen[("edge", "router", f"BGP session with {node}")] == "Established"
    assert "192.168.20." in seen[("edge", "router", "routes to LoadBalancer IPs")]
    assert seen[(SERVER, "demo.workloads", "leftover")] == "nothing left over"
    assert seen[(SERVER, "demo.cluster", "system pods")].endswith("kube-system workloads ready")
    # the audience's view: the LoadBalancer IP answers from the laptop, through the router
    assert "http://192.168.20.0/ answers" in seen[("laptop", "demo.path", "answers")]
    # ... and its route there is the router's (BGP-learnt on edge), not on the VLAN's link
    assert "route to 192.168.20.0 via edge (192.168.10.6)" in \
        seen[("laptop", "demo.path", "answers")]
    assert seen[("dell", "demo.vip", "VIP answers")] == \
        f"https://{VIP}:6443/ping from dell: HTTP 200"


def test_a_dropped_vip_is_no_go_naming_it(cluster, tmp_path):
    lab = cluster
    held = sh(lab, SERVER, f"ip -o -4 addr show to {VIP}/32").split()
    assert held, f"{VIP} is not on {SERVER} (the k3s double's kube-vip emulation)"
    interface = held[1]
    sh(lab, SERVER, f"ip addr del {VIP}/32 dev {interface}")
    try:
        code, found = call(check, tmp_path, "vip")
        assert code == 1 and found["ok"] is False
        assert failing(found) == {("dell", "demo.vip", "VIP answers")}, failing(found)
        detail = checks(found)[("dell", "demo.vip", "VIP answers")]
        assert detail.startswith(f"https://{VIP}:6443/ping from dell: no answer"), detail
    finally:
        sh(lab, SERVER, f"ip addr replace {VIP}/32 dev {interface}")
    code, back = call(check, tmp_path, "vip-back")
    assert code == 0 and failing(back) == set(), failing(back)


def test_cluster_drift_is_named_then_fixed(cluster, tmp_path):
    lab = cluster
    sh(lab, AGENT, "systemctl stop k3s-agent")
    sh(lab, SPEAKER, "systemctl stop bird")
    # another k3s binary on the speaker's node (a byte more: the double still runs): its
    # version is proven by the pinned sha256 (the plan's stamp read), not by asking it
    sh(lab, SPEAKER, "printf '# drift\\n' >> /usr/local/bin/k3s")
    for node in NODES:  # the pods behind the LoadBalancer IP (the lab's web double)
        sh(lab, node, f"systemctl stop {WEB}")
    leftover = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    sh(lab, SERVER, f"echo '{json.dumps(leftover)}' | {KUBECTL} apply -f -")
    assert wait_until(lambda: not node_ready(lab, AGENT), timeout=70, step=2), \
        f"{AGENT} still Ready 70 s after its k3s-agent stopped"

    code, found = call(check, tmp_path, "drift")
    assert code == 1 and found["ok"] is False
    bad = failing(found)
    assert {(AGENT, "k3s", "k3s-agent active"), (SERVER, "k3s", "nodes Ready"),
            ("edge", "router", f"BGP session with {SPEAKER}"),
            (SERVER, "demo.workloads", "leftover"), ("laptop", "demo.path", "answers"),
            (SPEAKER, "k3s", "k3s version")} <= bad, bad
    seen = checks(found)
    assert "not the pinned v1.34.3+k3s1: /usr/local/bin/k3s has sha256" in seen[
        (SPEAKER, "k3s", "k3s version")]
    assert seen[(SERVER, "k3s", "nodes Ready")] == f"not Ready: {AGENT}"
    assert seen[("edge", "router", f"BGP session with {SPEAKER}")] != "Established"
    assert f"namespace {NAMESPACE}" in seen[(SERVER, "demo.workloads", "leftover")]
    # the sessions of the nodes that still speak stay green: only the drifted ones are named
    assert ("edge", "router", "BGP session with rp0") not in bad
    assert "http://192.168.20.0/ does not answer" in seen[("laptop", "demo.path", "answers")]
    # the audience on edge's LAN sees the same page gone
    assert "http://192.168.20.0/ does not answer" in seen[(AUDIENCE, "demo.path", "answers")]
    assert {h for h, _s, _n in bad} <= {*NODES, "edge", "laptop", AUDIENCE}, bad

    # --check shows what the reset would do, and does none of it
    code, shown = call(reset, tmp_path, "shown", check=True)
    assert code == 1 and shown["check"] is True
    assert {("k3s", AGENT), ("demo.workloads", SERVER)} <= changed(shown), changed(shown)
    assert lab.exec(SPEAKER, "systemctl is-active bird").stdout.strip() != "active"
    assert lab.exec(SERVER, f"{KUBECTL} get namespace {NAMESPACE}").returncode == 0

    code, fixed = call(reset, tmp_path, "fix")
    assert code == 0 and fixed["ok"] is True, failing(fixed)
    assert {(AGENT, "k3s", "k3s-agent active"), (SERVER, "k3s", "nodes Ready"),
            ("edge", "router", f"BGP session with {SPEAKER}"),
            (SPEAKER, "k3s", "k3s version")} & failing(fixed) == set()
    assert "# drift" not in sh(lab, SPEAKER, "tail -n 1 /usr/local/bin/k3s")
    assert lab.exec(SPEAKER, "systemctl is-active bird").stdout.strip() == "active"
    assert ("laptop", "demo.path", "answers") not in failing(fixed)
    assert node_ready(lab, AGENT)
    assert lab.exec(SERVER, f"{KUBECTL} get namespace {NAMESPACE}").returncode != 0
    assert {("k3s", AGENT), ("k3s", SPEAKER), ("demo.workloads", SERVER)} <= changed(fixed), \
        changed(fixed)

    code, again = call(reset, tmp_path, "again")
    assert code == 0 and again["ok"] is True and changed(again) == set()


def test_the_audience_behind_the_router_is_answered_through_it(cluster, tmp_path):
    lab = cluster
    code, data = call(check, tmp_path, "audience")
    assert code == 0 and failing(data) == set(), failing(data)
    seen = checks(data)[(AUDIENCE, "demo.path", "answers")]
    assert "http://192.168.20.0/ answers" in seen
    assert "route to 192.168.20.0 via edge (192.168.30.1)" in seen  # edge's LAN address
    assert f"answers come back through edge: {SEAT} is on {LAN}, not the VLAN" in seen
    # what makes it so, on the real hosts: the audience has no address on the VLAN; no node
    # has a route of its own to the LAN (its answers take the default route, dell); dell
    # routes the LAN via edge (dell-gateway, from `lans:`), at boot too
    assert "192.168.10." not in sh(lab, AUDIENCE, "ip -4 -o addr show")
    for node in NODES:
        assert LAN not in sh(lab, node, "ip -4 route show"), node
    assert "via 192.168.10.6 dev eth1.100" in sh(lab, "dell", f"ip -4 route show {LAN}")
    assert f"ip route replace {LAN} via 192.168.10.6" in \
        sh(lab, "dell", "cat /etc/systemd/system/greenroom-routes.service")
    # the page itself, fetched the way the audience would
    page = sh(lab, AUDIENCE, "curl -fsS -m 5 http://192.168.20.0/")
    assert page.strip()


def test_no_announcement_or_no_way_back_is_no_go_naming_the_path(cluster, tmp_path):
    lab = cluster
    for node in NODES:  # every speaker stops: edge withdraws the LoadBalancer IPs
        sh(lab, node, "systemctl stop bird")
    code, found = call(check, tmp_path, "no-announcement")
    assert code == 1
    bad = failing(found)
    assert {(AUDIENCE, "demo.path", "answers"), ("laptop", "demo.path", "answers")} <= bad
    detail = checks(found)[(AUDIENCE, "demo.path", "answers")]
    assert "http://192.168.20.0/ does not answer" in detail, detail

    sh(lab, "dell", f"ip route del {LAN}")  # and the way back from the VLAN goes too
    for node in NODES:  # forget what dell's ICMP redirects taught the nodes about the LAN
        sh(lab, node, "ip route flush cache")
    code, found = call(check, tmp_path, "no-way-back")
    assert code == 1 and found["ok"] is False
    bad = failing(found)
    assert {(AUDIENCE, "demo.path", "answers"), ("dell", "dell-gateway", "drift")} <= bad, bad
    detail = checks(found)[(AUDIENCE, "demo.path", "answers")]
    assert f"no way back from the VLAN to {SEAT}: edge (192.168.10.6) answers it" in detail
    assert f"a route to {LAN} via edge" in detail
    assert "the route to 192.168.30.0/24 via edge" in checks(found)[
        ("dell", "dell-gateway", "drift")]

    code, fixed = call(reset, tmp_path, "fix-path")
    assert code == 0 and fixed["ok"] is True, failing(fixed)
    assert "via 192.168.10.6" in sh(lab, "dell", f"ip -4 route show {LAN}")
    seen = checks(fixed)[(AUDIENCE, "demo.path", "answers")]
    assert "http://192.168.20.0/ answers" in seen and "come back through edge" in seen
