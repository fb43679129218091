"""inv metallb on the virtual lab: the k3s double as the cluster, the rest real.

k3s (the lab's double of the binary, installed by the real `inv k3s`) runs on rp0 (server),
rp1 and lp0 (agents). In file order:
- `inv metallb.fetch` gets the manifest from the lab's release site and pins the same sha256
  as the committed hosts/lab.metallb.lock;
- `inv metallb` applies it through the common layer's kubectl on rp0, waits for the
  controller and the webhook's endpoints, and applies the CRs while the webhook refuses the
  first applies (the double refuses 3 times, then accepts): one run, backoff, no
  failurePolicy change; the demo Service gets a LoadBalancer IP from the pool;
- a second run changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Context, Exit

from tests.lab.conftest import LAB_INVENTORY

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
NODES = ("rp0", "rp1", "lp0")
SERVER = "rp0"
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
