"""inv metallb on the virtual lab: the k3s double as the cluster, the rest real.

k3s (the lab's double of the binary, installed by the real `inv k3s`) runs on rp0 (server),
rp1 and lp0 (agents). In file order:
- `inv metallb.fetch` gets the manifest from the lab's release site and pins the same sha256
  as the committed hosts/lab.metallb.lock;
- `inv metallb` applies it through the common layer's kubectl on rp0, waits for the
  controller and the webhook's endpoints, and applies the CRs while the webhook refuses the
  first applies (the double refuses 3 times, then accepts): one run, backoff, no
  failurePolicy change; the demo Service gets a LoadBalancer IP from the pool;
- a second run changes nothing; `--check` with another pool shows the CR's diff and changes
  nothing;
- the speaker double, started on the nodes from the objects read back from the cluster,
  peers with the router (real FRR, `inv router`); `inv metallb.check` without --address reads
  the Service's IP from the cluster, sees sessions Established, a route on the router and the
  page answering from the laptop behind it;
- a stopped speaker shows in the router's demo.check probe and in metallb.check, and the
  speaker runbook starts it again (the "BGP speaker stopped" drift);
- BIRD as the router kind, live: the same sessions and routes (`proto bird`), idempotent.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context, Exit

from tests.lab.conftest import LAB_INVENTORY
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
NODES = ("rp0", "rp1", "lp0")
SERVER = "rp0"
# metallb.check from the router and the laptop on the VLAN (the audience on edge's LAN needs
# dell's route back, which this module does not converge: tests/lab/test_demo_cluster.py)
AT_LAPTOP = ("--host", "edge,laptop")
LB_IP = "192.168.20.0"  # the first address of the lab's pool 192.168.20.0/28

CLUSTER = """\
cluster:
  version: v1.34.3+k3s1
  source: http://127.0.0.1:18231
  disable: [traefik, servicelb]

"""


def with_k3s(text: str) -> str:
    """The lab inventory with rp0 a k3s server, rp1 and lp0 agents (unless it has them)."""
    if "\ncluster:" not in text:
        text = text.replace("\nlab:\n", "\n" + CLUSTER + "lab:\n", 1)
    for address, role in (("10.231.0.3", "k3s-server"), ("10.231.0.4", "k3s-agent"),
                          ("10.231.0.5", "k3s-agent")):
        text = text.replace(f"address: {address}\n    roles: [pi]\n",
                            f"address: {address}\n    roles: [pi, {role}]\n")
    return text


def sh(lab, host: str, command: str, timeout: float = 120) -> str:
    done = lab.exec(host, command, timeout=timeout)
    assert done.returncode == 0, f"{host}: {command}: {done.stdout}{done.stderr}"
    return done.stdout


def stored(lab) -> dict:
    """The k3s double's objects but the Nodes (their heartbeats change every few seconds)."""
    store = json.loads(sh(lab, SERVER, "cat /var/lib/rancher/k3s/server/db/state.json"))
    return {k: v for k, v in store["objects"].items() if not k.startswith("Node/")}


def kubectl(lab, *args: str) -> dict:
    return json.loads(sh(lab, SERVER, "k3s kubectl " + " ".join(args) + " -o json"))


def report_of(task, inventory: Path, report: Path, **options) -> dict:
    try:
        task(Context(), inventory=str(inventory), report=str(report), parallel=10,
             host=None, check=False, accept_new_host_keys=False, **options)
    except Exit:
        pass
    return json.loads(report.read_text())


def changed_steps(data: dict) -> dict[str, list[str]]:
    return {h: [s["name"] for s in r["steps"] if s["status"] == "changed"]
            for h, r in data["hosts"].items() if r["changed"]}


def inv_task(*args: str, inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args, "-i", str(inventory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    """Fresh boards with k3s converged, a private cache and kubeconfig, a copy of the lab
    inventory (its locks are written beside it)."""
    from runbooks.k3s.tasks import converge, fetch

    tmp = tmp_path_factory.mktemp("metallb")
    for name in (*NODES, "edge", "laptop"):
        lab.reset(name)
    inventory = tmp / "lab.yaml"
    inventory.write_text(with_k3s(LAB_INVENTORY.read_text()))
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    patch.setenv("KUBECONFIG", str(tmp / "kubeconfig"))
    fetch(Context(), inventory=str(inventory))
    data = report_of(converge, inventory, tmp / "k3s.json")
    assert data["ok"] is True, json.dumps(data)[-3000:]
    yield tmp, inventory
    patch.undo()
    for name in (*NODES, "edge", "laptop"):
        lab.reset(name)


def test_fetch_pins_the_release_site_manifest_as_the_committed_lock(site, capsys):
    from runbooks.metallb.tasks import fetch

    tmp, inventory = site
    fetch(Context(), inventory=str(inventory))
    assert "pinned in" in capsys.readouterr().out
    pinned = json.loads((tmp / "lab.metallb.lock").read_text())["versions"]
    committed = json.loads(LAB_INVENTORY.with_name("lab.metallb.lock").read_text())["versions"]
    assert pinned == committed
    fetch(Context(), inventory=str(inventory))
    assert "already cached and matching its pin" in capsys.readouterr().out


def test_metallb_waits_out_the_webhook_then_applies_the_crs(lab, site):
    from runbooks.metallb.tasks import converge

    tmp, inventory = site
    data = report_of(converge, inventory, tmp / "first.json")
    assert data["ok"] is True, json.dumps(data)[-3000:]
    steps = changed_steps(data)
    assert set(steps) == {SERVER}
    assert any("MetalLB v0.14.9" in s for s in steps[SERVER])
    assert any("pools, peers and advertisement" in s for s in steps[SERVER])
    store = json.loads(sh(lab, SERVER, "cat /var/lib/rancher/k3s/server/db/state.json"))
    assert store["x-double-webhook-refusals"] == {"metallb-webhook-configuration": 3}
    pools = kubectl(lab, "get", "ipaddresspools", "-n", "metallb-system")["items"]
    assert [(p["metadata"]["name"], p["spec"]["addresses"]) for p in pools] == [
        ("default", ["192.168.20.0/28"])]
    peer = kubectl(lab, "get", "bgppeer", "edge", "-n", "metallb-system")
    assert peer["apiVersion"] == "metallb.io/v1beta2"
    assert peer["spec"] == {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.168.10.6"}
    advert = kubectl(lab, "get", "bgpadvertisement", "greenroom", "-n", "metallb-system")
    assert advert["spec"]["ipAddressPools"] == ["default"]
    hooks = kubectl(lab, "get", "validatingwebhookconfiguration",
                    "metallb-webhook-configuration")
    assert {h["failurePolicy"] for h in hooks["webhooks"]} == {"Fail"}
    service = kubectl(lab, "get", "service", "hello", "-n", "greenroom-demo")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": LB_IP}]
    deploy = kubectl(lab, "get", "deployment", "hello", "-n", "greenroom-demo")
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "192.168.10.2:5001/library/nginx:1.27-alpine"


def test_second_run_changes_nothing(lab, site):
    from runbooks.metallb.tasks import converge

    tmp, inventory = site
    before = stored(lab)
    data = report_of(converge, inventory, tmp / "second.json")
    assert data["ok"] is True and changed_steps(data) == {}, json.dumps(data)[-3000:]
    assert stored(lab) == before


def test_check_shows_the_pool_diff_and_changes_nothing(lab, site):
    tmp, inventory = site
    (tmp / "pool").mkdir(exist_ok=True)
    changed = tmp / "pool" / "lab.yaml"
    changed.write_text(inventory.read_text().replace("pools: {default: [192.168.20.0/28]}",
                                                     "pools: {default: [192.168.20.0/29]}", 1))
    shutil.copy(tmp / "lab.metallb.lock", tmp / "pool" / "lab.metallb.lock")
    before = stored(lab)
    done = inv_task("metallb", "--check", inventory=changed)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "-  - 192.168.20.0/28" in out and "+  - 192.168.20.0/29" in out, out
    assert "IPAddressPool/default" in out
    assert stored(lab) == before


def run_on(runbook, inventory: Path, names) -> tuple:
    from runbooks.core.inventory import load_inventory
    from runbooks.core.runner import run_runbook

    inv = load_inventory(str(inventory))
    out = io.StringIO()
    result = run_runbook(runbook, inv, [inv.hosts[n] for n in names], out=out)
    return result, out.getvalue()


def router_state(lab, inventory: Path) -> dict[str, tuple[bool, str]]:
    """The router's demo.check probe, its facts read in the guest."""
    from runbooks.core.facts import FactResult
    from runbooks.core.inventory import load_inventory
    from runbooks.router import demo_hooks

    inv = load_inventory(str(inventory))
    edge = inv.hosts["edge"]
    facts = {}
    for key, command in demo_hooks.facts(edge, inv).items():
        done = lab.exec("edge", command)
        facts[key] = FactResult(done.returncode, done.stdout)
    return {c.name: (c.ok, c.detail) for c in demo_hooks.evaluate(edge, inv, facts)}


def test_speaker_double_from_the_cluster_gives_the_laptop_the_page(lab, site):
    from runbooks.lab.doubles import bgp_speaker
    from runbooks.router.plan import RUNBOOK as ROUTER

    tmp, inventory = site
    result, out = run_on(ROUTER, inventory, ["edge"])
    assert result.ok, out
    result, out = run_on(bgp_speaker.RUNBOOK, inventory, NODES)
    assert result.ok and result.changed > 0, out
    for node in NODES:
        assert f"{LB_IP}/32" in sh(lab, node, "ip -4 -o addr show dev lo")
        assert "neighbor 192.168.10.6 as 64512" in sh(lab, node, "cat /etc/bird/bird.conf")
    assert wait_until(lambda: router_state(lab, inventory).get(
        "routes to LoadBalancer IPs") == (True, LB_IP), timeout=30), router_state(lab, inventory)
    assert all(ok for ok, _ in router_state(lab, inventory).values()), router_state(lab, inventory)
    hops = sh(lab, "edge", "ip route show proto bgp")
    assert all(f"via {a}" in hops for a in ("192.168.10.3", "192.168.10.4", "192.168.10.5"))
    checked = inv_task("metallb.check", *AT_LAPTOP, inventory=inventory)
    text = checked.stdout + checked.stderr
    assert checked.returncode == 0, text
    assert f"Service greenroom-demo/hello: {LB_IP}" in text
    assert "session with lp0 (192.168.10.5): Established" in text
    assert f"route to LoadBalancer IP {LB_IP}" in text and f"http://{LB_IP}/ answers" in text
    page = sh(lab, "laptop", "python3 -c \"import urllib.request as u; print(u.urlopen("
                             f"'http://{LB_IP}/', timeout=5).read().decode())\"")
    assert page.startswith("greenroom demo, served by ")
    again, out = run_on(bgp_speaker.RUNBOOK, inventory, NODES)
    assert again.ok and again.changed == 0, out


def test_a_stopped_speaker_shows_in_the_probe_and_the_runbook_restarts_it(lab, site):
    from runbooks.lab.doubles import bgp_speaker

    tmp, inventory = site
    sh(lab, "rp1", f"systemctl stop {bgp_speaker.UNIT}")
    assert wait_until(lambda: not router_state(lab, inventory)["BGP session with rp1"][0],
                      timeout=30)
    assert router_state(lab, inventory)["routes to LoadBalancer IPs"] == (True, LB_IP)
    checked = inv_task("metallb.check", *AT_LAPTOP, inventory=inventory)
    assert checked.returncode == 1
    assert "session with rp1 (192.168.10.4):" in checked.stdout
    result, out = run_on(bgp_speaker.RUNBOOK, inventory, NODES)
    assert result.ok and [n for n, h in result.hosts.items() if h.changed] == ["rp1"], out
    assert wait_until(lambda: router_state(lab, inventory)["BGP session with rp1"] == (
        True, "Established"), timeout=20), router_state(lab, inventory)


def test_bird_as_the_router_learns_the_same_routes(lab, site):
    """The second router kind, live: edge made afresh with kind bird (Debian's bird2)."""
    from runbooks.common.bgp_state import bird_sessions
    from runbooks.router.plan import RUNBOOK as ROUTER

    tmp, inventory = site
    (tmp / "bird").mkdir(exist_ok=True)
    birdy = tmp / "bird" / "lab.yaml"
    text = inventory.read_text()
    assert "vars: {kind: frr, asn: 64512}" in text
    birdy.write_text(text.replace("vars: {kind: frr, asn: 64512}",
                                  "vars: {kind: bird, asn: 64512}", 1))
    lab.reset("edge")
    result, out = run_on(ROUTER, birdy, ["edge"])
    assert result.ok and result.changed > 0, out
    sh(lab, "edge", "bird -p -c /etc/bird/bird.conf")
    assert lab.exec("edge", "command -v vtysh").returncode != 0  # no FRR on this router
    assert wait_until(lambda: LB_IP in lab.exec("edge", "ip route show proto bird").stdout,
                      timeout=60), sh(lab, "edge", "birdc show protocols")
    # one route is there as soon as one node's session is up; the speakers whose FRR peer
    # went away retry after their error wait (up to 30 s): every session, then the check
    def all_established() -> bool:
        states = bird_sessions(lab.exec("edge", "birdc show protocols").stdout)
        return sorted(states) == sorted(NODES) and set(states.values()) == {"Established"}

    assert wait_until(all_established, timeout=90), sh(lab, "edge", "birdc show protocols")
    checked = inv_task("metallb.check", *AT_LAPTOP, inventory=birdy)
    text = checked.stdout + checked.stderr
    assert checked.returncode == 0, text
    assert "session with rp0 (192.168.10.3): Established" in text
    assert f"http://{LB_IP}/ answers" in text
    again, out = run_on(ROUTER, birdy, ["edge"])
    assert again.ok and again.changed == 0, out
