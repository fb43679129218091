"""The runbooks under fault trial, each as a `Subject` (tests/support/faulttrials.py).

`lab_subjects(lab, tmp)` gives the ones that run on hosts/lab.yaml (dell-gateway, registry,
pi-prep, router, k3s), `microk8s_subject` the one on hosts/lab-microk8s.yaml and
`xen_subject` the one on hosts/lab-xen.yaml. Each `prepare` puts its hosts back to the state
a converging run starts from; `run` returns the run's report as `--report` writes it.
"""

from __future__ import annotations

import io
import json
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
        problems = leases_intact(lab, GATEWAY)
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


def k3s(folder: Path, target: str = "rp1") -> Subject:
    """inv k3s (all phases, as the task runs them) on fresh boards."""
    inventory = k3s_inventory(folder)
    kubeconfig = folder / "kubeconfig"

    def prepare(lab: Any) -> None:
        for name in BOARDS:
            lab.reset(name)
        kubeconfig.unlink(missing_ok=True)

    def run(lab: Any, out: io.StringIO) -> dict[str, Any]:
        from invoke import Context, Exit

        from runbooks.k3s.tasks import converge

        report = folder / "k3s-report.json"
        report.unlink(missing_ok=True)
        try:
            converge(Context(), inventory=str(inventory), report=str(report), parallel=10,
                     timeout=60, kubeconfig=str(kubeconfig))
        except Exit as exc:
            if not report.exists():
                raise AssertionError(f"inv k3s wrote no report: {exc}") from exc
        data: dict[str, Any] = json.loads(report.read_text())
        return data

    def healthy(lab: Any) -> list[str]:
        units = {"rp0": "k3s", "rp1": "k3s-agent", "lp0": "k3s-agent"}
        return [p for name, unit in units.items() for p in started_after(
            lab, name, unit, "/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/registries.yaml",
            f"/etc/systemd/system/{unit}.service.env")]

    # the gateway is in the run too (the release is pushed to its registry first)
    return Subject("k3s", target, (GATEWAY, *BOARDS), prepare, run, healthy=healthy)


def lab_subjects(folder: Path) -> dict[str, Subject]:
    """Every subject that runs on hosts/lab.yaml, by name."""
    return {s.name: s for s in (dell_gateway(), registry(), pi_prep(), router(),
                                k3s(folder / "k3s"))}


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
