"""The demo's own reset: the workloads and reset steps the inventory's `demo:` section names.

Namespaces and manifests are removed with kubectl on the first cluster host (role
k3s-server, then microk8s); each site reset step runs on the hosts it names. Every step is
guarded (a namespace is deleted only while it exists, a site step only when its guard says
so), so a second demo.reset does nothing and demo.check reports what is left over.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.common.demo_section import Section, section_of
from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps.base import Action, Change, Command, Plan, Step, StepFailed
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


def namespaces_of(result: FactResult) -> set[str] | None:
    """`kubectl get namespaces -o json` -> the names; None when the cluster did not say."""
    if not result.ok:
        return None
    try:
        body = json.loads(result.out)
    except ValueError:
        return None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return None
    return {str((item.get("metadata") or {}).get("name")) for item in items
            if isinstance(item, dict)}


class NamespaceGone(Step):
    """Delete a namespace while the cluster lists it. Every namespace step reads the same
    plain listing (`kubectl get namespaces -o json`): one kubectl for all of them, which
    demo.check cuts from the cluster read its probes make anyway (runbooks/demo/reads.py).
    A cluster that cannot be read lists nothing to delete (its probes say why)."""

    def __init__(self, kubectl: str, namespace: str) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        self.name = f"Ensure namespace {namespace} is gone"
        self.command = (f"{kubectl} delete namespace {shlex.quote(namespace)} "
                        "--ignore-not-found --timeout=120s")

    def facts(self) -> Mapping[str, str]:
        return {"namespaces": f"{self.kubectl} get namespaces -o json"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if self.namespace not in (namespaces_of(facts["namespaces"]) or set()):
            return []
        return [Change(f"run: {self.command}", (Action(self.command),))]


def workload_steps(section: Section, inventory: Inventory) -> list[Step]:
    """Remove each named namespace and manifest while it is there."""
    kubectl = section.kubectl
    steps: list[Step] = [NamespaceGone(kubectl, namespace) for namespace in section.namespaces]
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
