"""The runbooks under fault trial, each as a `Subject` (tests/support/faulttrials.py).

`lab_subjects(tmp)` gives the ones that run on hosts/lab.yaml (dell-gateway, registry,
pi-prep, router, k3s, metallb), `microk8s` the one on hosts/lab-microk8s.yaml and
`xen_dom0` the one on hosts/lab-xen.yaml. Each `prepare` puts its hosts back to the state
a converging run starts from; `run` returns the run's report as `--report` writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from tests.support.faulttrials import (
    ROOT,
    Subject,
    leases_intact,
    seed_leases,
    seed_registry_storage,
    started_after,
    storage_intact,
)

GATEWAY = "dell"
BOARDS = ("rp0", "rp1", "lp0")


def _runbook_run(runbook: Any, names: tuple[str, ...], **options: Any) -> Any:
    def run(lab: Any, out: io.StringIO) -> dict[str, Any]:
        from runbooks.core.runner import run_runbook

        inv = lab.inventory
        result = run_runbook(runbook, inv, [inv.hosts[n] for n in names], out=out,
                             options=options)
        return result.as_report()

    return run


# What an operator's hands (or a package upgrade) change on a running gateway: the converging
# run rewrites both dhcpd files, restarts dhcpd, turns forwarding on, reloads the NAT table.
DRIFT = ("sed -i '1i # edited by hand' /etc/dhcp/dhcpd.conf && "
         "sed -i 's/^INTERFACESv4=.*/INTERFACESv4=\"\"/' /etc/default/isc-dhcp-server && "
         "sysctl -q -w net.ipv4.ip_forward=0 && nft delete table inet greenroom")


def leases_settled(lab: Any, timeout: float = 5.0) -> list[str]:
    """`leases_intact` on the gateway, read again for up to `timeout` s while it finds a
    problem: dhcpd appends to its database as a client renews (the lab's microvm), and a
    read in the middle of an append sees a block cut short, whole a moment later."""
    deadline = time.monotonic() + timeout
    problems = leases_intact(lab, GATEWAY)
    while problems and time.monotonic() < deadline:
        time.sleep(0.2)
        problems = leases_intact(lab, GATEWAY)
    return problems


def dell_gateway() -> Subject:
    """dell-gateway on a gateway that serves live leases and drifted (DRIFT)."""
    from runbooks.dell_gateway.plan import RUNBOOK

    run = _runbook_run(RUNBOOK, (GATEWAY,))

    def prepare(lab: Any) -> None:
        if not run(lab, io.StringIO())["ok"]:
            lab.reset(GATEWAY)
            report = run(lab, io.StringIO())
            if not report["ok"]:
                raise AssertionError(f"dell-gateway on a fresh gateway: {json.dumps(report)}")
        seed_leases(lab, GATEWAY)
        problems = leases_settled(lab)
        if problems:
            raise AssertionError(f"dhcpd did not keep the seeded leases: {problems}")
        done = lab.exec(GATEWAY, DRIFT)
        if done.returncode != 0:
            raise AssertionError(f"drift: {done.stderr}")

    return Subject("dell-gateway", GATEWAY, (GATEWAY,), prepare,
                   run, lambda lab: leases_intact(lab, GATEWAY),
                   lambda lab: started_after(lab, GATEWAY, "isc-dhcp-server",
                                             "/etc/dhcp/dhcpd.conf",
                                             "/etc/default/isc-dhcp-server"))


def registry() -> Subject:
    """registry.up on a converged gateway whose registry storage already holds an image."""
    from runbooks.dell_gateway.plan import RUNBOOK as GATEWAY_RUNBOOK
    from runbooks.registry.converge import UP

    gateway = _runbook_run(GATEWAY_RUNBOOK, (GATEWAY,))

    def prepare(lab: Any) -> None:
        # a converged gateway (a no-op when it is) without the registry (purged when there)
        if not gateway(lab, io.StringIO())["ok"]:
            lab.reset(GATEWAY)
            report = gateway(lab, io.StringIO())
            if not report["ok"]:
                raise AssertionError(f"dell-gateway before registry.up: {json.dumps(report)}")
        done = lab.exec(GATEWAY, "if dpkg-query -W docker-registry >/dev/null 2>&1; then "
                                 "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "
                                 "docker-registry >/dev/null; fi; rm -rf /etc/docker/registry "
                                 "/var/lib/docker-registry")
        if done.returncode != 0:
            raise AssertionError(f"purging the registry: {done.stderr}")
        seed_registry_storage(lab, GATEWAY)

    return Subject("registry", GATEWAY, (GATEWAY,), prepare, _runbook_run(UP, (GATEWAY,)),
                   lambda lab: storage_intact(lab, GATEWAY),
                   lambda lab: started_after(lab, GATEWAY, "docker-registry",
                                             "/etc/docker/registry/config.yml"))


def pi_prep(target: str = "rp0") -> Subject:
    from runbooks.pi_prep.plan import RUNBOOK

    def prepare(lab: Any) -> None:
        for name in BOARDS:
            lab.reset(name)

    def healthy(lab: Any) -> list[str]:
        return [p for name in BOARDS for p in started_after(
            lab, name, "containerd", "/etc/containerd/config.toml")]

    return Subject("pi-prep", target, BOARDS, prepare,
                   _runbook_run(RUNBOOK, BOARDS, timeout=120), healthy=healthy)


def router() -> Subject:
    from runbooks.router.plan import RUNBOOK

    def prepare(lab: Any) -> None:
        lab.reset("edge")

    def healthy(lab: Any) -> list[str]:
        running = lab.exec("edge", "vtysh -c 'show running-config'").stdout
        return [] if "router bgp 64512" in running else [
            "edge: FRR does not run the BGP config greenroom wrote (a restart was lost)"]

    return Subject("router", "edge", ("edge",), prepare, _runbook_run(RUNBOOK, ("edge",)),
                   healthy=healthy)


K3S_CLUSTER = """\
cluster:
  version: v1.34.3+k3s1
  source: http://127.0.0.1:18231
  disable: [traefik, servicelb]

"""


def k3s_inventory(folder: Path) -> Path:
    """A copy of the lab inventory with rp0 a k3s server and rp1, lp0 agents."""
    text = (ROOT / "hosts" / "lab.yaml").read_text()
    if "\ncluster:" not in text:
        text = text.replace("\nlab:\n", "\n" + K3S_CLUSTER + "lab:\n", 1)
    for address, role in (("10.231.0.3", "k3s-server"), ("10.231.0.4", "k3s-agent"),
                          ("10.231.0.5", "k3s-agent")):
        text = text.replace(f"address: {address}\n    roles: [pi]\n",
                            f"address: {address}\n    roles: [pi, {role}]\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab-k3s.yaml"
    path.write_text(text)
    return path


def k3s_converge(folder: Path) -> dict[str, Any]:
    """`inv k3s` (all phases, as the task runs them) on k3s_inventory(folder): its report."""
    from invoke import Context, Exit

    from runbooks.k3s.tasks import converge

    report = folder / "k3s-report.json"
    report.unlink(missing_ok=True)
    try:
        converge(Context(), inventory=str(k3s_inventory(folder)), report=str(report),
                 parallel=10, timeout=60, kubeconfig=str(folder / "kubeconfig"))
    except Exit as exc:
        if not report.exists():
            raise AssertionError(f"inv k3s wrote no report: {exc}") from exc
    data: dict[str, Any] = json.loads(report.read_text())
    return data


K3S_UNITS = {"rp0": "k3s", "rp1": "k3s-agent", "lp0": "k3s-agent"}


def k3s(folder: Path, target: str = "rp1") -> Subject:
    """inv k3s (all phases, as the task runs them) on fresh boards."""

    def prepare(lab: Any) -> None:
        for name in BOARDS:
            lab.reset(name)
        (folder / "kubeconfig").unlink(missing_ok=True)

    def healthy(lab: Any) -> list[str]:
        return [p for name, unit in K3S_UNITS.items() for p in started_after(
            lab, name, unit, "/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/registries.yaml",
            f"/etc/systemd/system/{unit}.service.env")]

    # the gateway is in the run too (the release is pushed to its registry first)
    return Subject("k3s", target, (GATEWAY, *BOARDS), prepare,
                   lambda lab, _out: k3s_converge(folder), healthy=healthy)


# the k3s double's object store on the first server (runbooks/lab/doubles/k3s)
K3S_STORE = "/var/lib/rancher/k3s/server/db/state.json"
# what the API server sets on an object itself, not what a client applied
SERVER_SET = ("creationTimestamp", "uid", "generation", "resourceVersion")
# the store put back to `baseline` (a JSON store on stdin) under the double's own lock,
# keeping the Nodes as the running server has them now; written atomically
RESTORE_STORE = f"""
import fcntl, json, sys
from pathlib import Path
path = Path("{K3S_STORE}")
baseline = json.load(sys.stdin)
with open(path.with_suffix(".lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    now = json.loads(path.read_text())
    nodes = {{k: v for k, v in now["objects"].items() if k.startswith("Node/")}}
    kept = {{k: v for k, v in baseline["objects"].items() if not k.startswith("Node/")}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({{**baseline, "objects": {{**kept, **nodes}}}}))
    tmp.replace(path)
"""


def cluster_objects(lab: Any, server: str = "rp0") -> dict[str, str]:
    """Every object the cluster keeps but the Nodes (their heartbeats), as a digest of what
    a client gave it (no status, none of the metadata the server sets), read in the guest
    without SSH; the kinds the CRDs serve too. Not the double's own counters (`x-double-*`:
    how often its webhook refused, which each retry moves on)."""
    done = lab.exec(server, f"cat {K3S_STORE}")
    if done.returncode != 0:
        raise AssertionError(f"{server}: no k3s object store: {done.stderr}")
    store = json.loads(done.stdout)
    out = {}
    for key, obj in store.get("objects", {}).items():
        if key.startswith("Node/"):
            continue
        given = {k: v for k, v in obj.items() if k != "status"}
        given["metadata"] = {k: v for k, v in obj.get("metadata", {}).items()
                             if k not in SERVER_SET}
        out[key] = hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()
    for key, value in store.items():
        if key != "objects" and not key.startswith("x-double-"):
            out[f"store:{key}"] = hashlib.sha256(
                json.dumps(value, sort_keys=True).encode()).hexdigest()
    return out


LB_SERVICE = ("greenroom-demo", "hello")


def metallb_in(store: dict[str, Any]) -> bool:
    """Whether `inv metallb` left anything in the k3s double's store (its CRDs, its
    namespace's or the demo's objects, the webhook's refusal count)."""
    spaces = {"metallb-system", LB_SERVICE[0]}
    return ("x-double-webhook-refusals" in store
            or any(c.get("group") == "metallb.io" for c in store.get("crds", {}).values())
            or any(key.split("/")[1] in spaces or key.split("/")[-1] in spaces
                   for key in store.get("objects", {})))


def metallb(folder: Path, target: str = "rp0") -> Subject:
    """inv metallb on the k3s cluster's first server: k3s converged first (once, again only
    when a board lost it), then the cluster put back to what k3s left, without MetalLB's
    objects, the demo Service or the webhook's refusals (as the fresh cluster `inv metallb`
    first meets)."""
    from runbooks.core.inventory import load_inventory
    from runbooks.metallb.plan import RUNBOOK

    inventory = k3s_inventory(folder)
    shutil.copy(ROOT / "hosts" / "lab.metallb.lock", inventory.with_name(
        inventory.stem + ".metallb.lock"))
    baseline: dict[str, str] = {}

    def k3s_running(lab: Any) -> bool:
        return all(lab.exec(name, f"systemctl is-active -q {unit}").returncode == 0
                   for name, unit in K3S_UNITS.items())

    def prepare(lab: Any) -> None:
        if not baseline and k3s_running(lab):
            # k3s converged already (a k3s trial before this one): its cluster, if MetalLB
            # never came, is the one to start from
            store = lab.exec(target, f"cat {K3S_STORE}").stdout
            if store and not metallb_in(json.loads(store)):
                baseline["store"] = store
        if not baseline or not k3s_running(lab):
            baseline.clear()
            for name in BOARDS:
                lab.reset(name)
            (folder / "kubeconfig").unlink(missing_ok=True)
            with contextlib.redirect_stdout(io.StringIO()):
                report = k3s_converge(folder)
            if not report.get("ok"):
                raise AssertionError(f"inv k3s before inv metallb: {json.dumps(report)[-3000:]}")
            baseline["store"] = lab.exec(target, f"cat {K3S_STORE}").stdout
            return
        done = lab.exec(target, f"python3 -c {shlex.quote(RESTORE_STORE)}",
                        stdin=baseline["store"])
        if done.returncode != 0:
            raise AssertionError(f"{target}: putting the cluster back: {done.stderr}")

    def run(lab: Any, out: io.StringIO) -> dict[str, Any]:
        from runbooks.core.runner import run_runbook

        inv = load_inventory(str(inventory))
        return run_runbook(RUNBOOK, inv, [inv.hosts[target]], out=out).as_report()

    def healthy(lab: Any) -> list[str]:
        namespace, name = LB_SERVICE
        done = lab.exec(target, f"k3s kubectl get service {name} -n {namespace} -o json")
        ingress = (json.loads(done.stdout).get("status", {}).get("loadBalancer", {})
                   .get("ingress") if done.returncode == 0 else None)
        return [] if ingress else [
            f"{target}: Service {namespace}/{name} has no LoadBalancer IP ({done.stderr.strip()})"]

    return Subject("metallb", target, (target,), prepare, run, healthy=healthy,
                   state=lambda lab: cluster_objects(lab, target))


def lab_subjects(folder: Path) -> dict[str, Subject]:
    """Every subject that runs on hosts/lab.yaml, by name."""
    return {s.name: s for s in (dell_gateway(), registry(), pi_prep(), router(),
                                k3s(folder / "k3s"), metallb(folder / "k3s"))}


MK8S_NODES = ("mk0", "mk1", "mk2")


def microk8s(folder: Path, target: str = "mk1") -> Subject:
    """microk8s on hosts/lab-microk8s.yaml's three fresh nodes."""
    from runbooks.microk8s.plan import RUNBOOK

    kubeconfig = folder / "mk8s-kubeconfig"

    def prepare(lab: Any) -> None:
        for name in MK8S_NODES:
            lab.reset(name)
        kubeconfig.unlink(missing_ok=True)

    return Subject("microk8s", target, MK8S_NODES, prepare,
                   _runbook_run(RUNBOOK, MK8S_NODES, timeout=30, kubeconfig_path=kubeconfig))


def xen_dom0() -> Subject:
    """xen-dom0 on hosts/lab-xen.yaml's fresh dom0."""
    from runbooks.xen_dom0.plan import RUNBOOK

    def prepare(lab: Any) -> None:
        lab.reset("xen0")

    return Subject("xen-dom0", "xen0", ("xen0",), prepare, _runbook_run(RUNBOOK, ("xen0",)))
