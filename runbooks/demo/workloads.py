"""The demo's own reset: the workloads and reset steps the inventory's `demo:` section names.

Namespaces and manifests are removed with kubectl on the first cluster host (role
k3s-server, then microk8s); each site reset step runs on the hosts it names. Every step is
guarded (a namespace is deleted only while it exists, a site step only when its guard says
so), so a second demo.reset does nothing and demo.check reports what is left over.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.common.demo_section import Section, section_of
from runbooks.core.runner import Runbook
from runbooks.core.steps.base import Command, Plan, StepFailed
from runbooks.demo.clock import ALL_ROLES

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext
    from runbooks.core.inventory import Host, Inventory

CLUSTER_ROLES = ("k3s-server", "microk8s")
REPO = Path(__file__).resolve().parents[2]


def cluster_host(inventory: Inventory) -> Host | None:
    """Where kubectl runs: the first k3s server, else the first microk8s node."""
    for role in CLUSTER_ROLES:
        for host in inventory.hosts.values():
            if role in host.roles:
                return host
    return None


def workload_steps(section: Section, inventory: Inventory) -> list[Command]:
    """Remove each named namespace and manifest while it is there."""
    kubectl = section.kubectl
    steps = []
    for namespace in section.namespaces:
        ns = shlex.quote(namespace)
        steps.append(Command(
            f"Ensure namespace {namespace} is gone",
            f"{kubectl} delete namespace {ns} --ignore-not-found --timeout=120s",
            only_if=f"{kubectl} get namespace {ns} >/dev/null 2>&1"))
    for manifest in section.manifests:
        path = Path(manifest) if Path(manifest).is_absolute() else REPO / manifest
        try:
            text = path.read_text()
        except OSError as exc:
            raise StepFailed(f"{inventory.path}: demo.workloads.manifests: cannot read "
                             f"{manifest} ({exc.strerror}); fix the path") from None
        body = shlex.quote(text)
        steps.append(Command(
            f"Ensure the objects of {manifest} are gone",
            f"printf '%s' {body} | {kubectl} delete -f - --ignore-not-found --timeout=120s",
            only_if=f"printf '%s' {body} | {kubectl} get -f - -o name 2>/dev/null "
                    "| grep -q ."))
    return steps


def workloads_plan(ctx: HostContext) -> Plan:
    section = section_of(ctx.inventory)
    plan = Plan()
    cluster = cluster_host(ctx.inventory)
    if cluster is not None and cluster.name == ctx.host.name:
        plan.add(*workload_steps(section, ctx.inventory))
    for step in section.reset:
        if ctx.host.name not in {h.name for h in ctx.inventory.select(step.hosts)}:
            continue
        plan.add(Command(step.name, step.run, only_if=step.only_if, unless=step.unless))
    return plan


WORKLOADS = Runbook("demo.workloads", ALL_ROLES, workloads_plan)
