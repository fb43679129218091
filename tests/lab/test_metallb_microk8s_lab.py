"""inv metallb on microk8s (hosts/lab-microk8s.yaml: mk0 seed, mk1, mk2 worker), L2 mode.

The same runbook as on k3s, through `microk8s kubectl` on the seed node: the microk8s
double's kubectl is the k3s double's (one object store code; runbooks/lab/doubles/microk8s).
In file order, on one lab brought up for this module with microk8s converged:
- with microk8s's own `metallb` addon enabled the run is refused, naming the addon and what
  to do, and nothing of MetalLB reaches the cluster;
- with the addon off, MetalLB is installed from the release site's manifest, the webhook
  waited out, the pool and L2Advertisement applied; the demo Service and the ingress
  Service get addresses from the pool (the ingress one the address it asks for);
- a second run changes nothing, and microk8s's own check still passes.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from invoke import Context, Exit

from tests.lab.conftest import LabHandle, lab_up

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "hosts" / "lab-microk8s.yaml"
NODES = ("mk0", "mk1", "mk2")
SEED = "mk0"
POOL = [f"192.168.30.{n}" for n in range(240, 251)]


@pytest.fixture(scope="module")
def mk8s(tmp_path_factory):
    """hosts/lab-microk8s.yaml up, microk8s converged; a copy of the inventory and its lock
    in a temp dir, a private cache and kubeconfig. Taken down after the module."""
    from runbooks.core.runner import run_runbook
    from runbooks.microk8s import plan

    tmp = tmp_path_factory.mktemp("metallb-mk8s")
    patch = pytest.MonkeyPatch()
    with lab_up(INVENTORY) as handle:
        try:
            inventory = handle.inventory
            for name in NODES:
                handle.reset(name)
            copy = tmp / "lab-microk8s.yaml"
            shutil.copy(INVENTORY, copy)
            shutil.copy(INVENTORY.with_name("lab-microk8s.metallb.lock"),
                        tmp / "lab-microk8s.metallb.lock")
            patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
            patch.setenv("KUBECONFIG", str(tmp / "kubeconfig"))
            out = io.StringIO()
            result = run_runbook(plan.RUNBOOK, inventory, [inventory.hosts[n] for n in NODES],
                                 parallel=3, out=out,
                                 options={"timeout": 30, "kubeconfig_path": tmp / "kubeconfig"})
            assert result.ok, out.getvalue()[-3000:]
            yield handle, copy, tmp
        finally:
            patch.undo()


def sh(lab: LabHandle, host: str, command: str) -> str:
    done = lab.exec(host, command)
    assert done.returncode == 0, f"{host}: {command}: {done.stdout}{done.stderr}"
    return done.stdout


def metallb(inventory: Path, report: Path) -> dict:
    from runbooks.metallb.tasks import converge

    try:
        converge(Context(), inventory=str(inventory), report=str(report), parallel=3,
                 host=None, check=False, accept_new_host_keys=False)
    except Exit:
        pass
    return json.loads(report.read_text())


def namespaces_in_cluster(lab: LabHandle) -> set[str]:
    items = json.loads(sh(lab, SEED, "microk8s kubectl get namespaces -o json"))["items"]
    return {i["metadata"]["name"] for i in items}


def test_the_microk8s_metallb_addon_is_refused_with_the_reason(mk8s) -> None:
    lab, inventory, tmp = mk8s
    from runbooks.metallb.tasks import fetch

    fetch(Context(), inventory=str(inventory))
    sh(lab, SEED, "microk8s enable metallb:192.168.30.240-192.168.30.250")
    assert sh(lab, SEED, "microk8s status -a metallb").strip() == "enabled"
    data = metallb(inventory, tmp / "refused.json")
    assert data["ok"] is False
    host = data["hosts"][SEED]
    error = " ".join([host["error"] or "", *(s.get("error", "") for s in host["steps"])])
    assert "microk8s's metallb addon is enabled" in error
    assert "microk8s disable metallb" in error
    assert "metallb-system" not in namespaces_in_cluster(lab), "nothing applied while refused"
    sh(lab, SEED, "microk8s disable metallb")
    assert sh(lab, SEED, "microk8s status -a metallb").strip() == "disabled"


def test_metallb_converges_on_microk8s_and_gives_addresses_from_the_pool(mk8s) -> None:
    lab, inventory, tmp = mk8s
    data = metallb(inventory, tmp / "first.json")
    assert data["ok"] is True, json.dumps(data)[-3000:]
    changed = [s["name"] for s in data["hosts"][SEED]["steps"] if s["status"] == "changed"]
    assert any("is installed" in s for s in changed), changed
    assert any("pools, peers and advertisement" in s for s in changed), changed
    assert [h for h, r in data["hosts"].items() if r["changed"]] == [SEED]
    pool = json.loads(sh(lab, SEED, "microk8s kubectl get ipaddresspool default -n "
                                    "metallb-system -o json"))
    assert pool["spec"]["addresses"] == ["192.168.30.240-192.168.30.250"]
    sh(lab, SEED, "microk8s kubectl get l2advertisement greenroom -n metallb-system -o json")
    services = json.loads(sh(lab, SEED, "microk8s kubectl get services -A -o json"))["items"]
    got = {f"{s['metadata']['namespace']}/{s['metadata']['name']}":
           [i["ip"] for i in s["status"]["loadBalancer"]["ingress"]]
           for s in services if s["spec"].get("type") == "LoadBalancer"}
    assert got["ingress/ingress"] == ["192.168.30.240"]  # the address it asks for
    assert len(got["greenroom-demo/hello"]) == 1 and got["greenroom-demo/hello"][0] in POOL
    assert got["greenroom-demo/hello"] != got["ingress/ingress"]


def test_second_run_changes_nothing_and_microk8s_still_checks_ok(mk8s) -> None:
    from runbooks.core.runner import run_runbook
    from runbooks.microk8s import plan

    lab, inventory, tmp = mk8s
    data = metallb(inventory, tmp / "second.json")
    assert data["ok"] is True, json.dumps(data)[-3000:]
    assert sum(h["changed"] for h in data["hosts"].values()) == 0, json.dumps(data)[-3000:]
    out = io.StringIO()
    check = run_runbook(plan.CHECK, lab.inventory, [lab.inventory.hosts[n] for n in NODES],
                        parallel=3, out=out, options={"timeout": 30})
    assert check.ok, out.getvalue()[-3000:]
