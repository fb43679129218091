"""metallb: install the pinned MetalLB manifest on the cluster and apply the site's objects.

Runs on the cluster's first server (through the distribution's own kubectl over SSH, so it
works on k3s and on microk8s alike):
1. the objects rendered from the inventory are checked against the CRDs' OpenAPI schemas of
   that very manifest (jsonschema) whenever they would be applied (one of them differs from
   the cluster's, or is missing): a bad one fails the run, in --check too, before anything is
   sent (`SchemaGuard` is the plan's first step, planned from the first round's facts). When
   the cluster has them all already, nothing would be sent and nothing is validated (a
   converged cluster's check does not even import jsonschema);
2. the manifest from `inv metallb.fetch`'s cache (its sha256 checked against the lock) is
   applied when any of its objects is missing or differs;
3. wait until the controller Deployment is Available and `metallb-webhook-service` has
   endpoints (metallb#1597, #1612): MetalLB's webhook refuses CRs before that;
4. the IPAddressPools, BGPPeers (v1beta2) and the advertisement are applied only when they
   differ, retried while the webhook still refuses; `--check` shows each object's diff
   (Secrets' values never shown);
5. the demo Service of type LoadBalancer, its image from the site's registry.
Never `failurePolicy=Ignore`. On microk8s the `metallb` addon must be off: this runbook owns
MetalLB there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runbooks.common.bgp import metallb_of, routers_of
from runbooks.common.kubectl import (
    Manifests,
    kubectl_on_node,
    load_manifests,
    object_fact,
    object_ref,
)
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Action, Change, Plan, Step, StepFailed
from runbooks.core.steps.files import unified_diff
from runbooks.metallb import crs, demo, fetch, schema

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

NAMESPACE = crs.NAMESPACE
CONTROLLER = "controller"
WEBHOOK_SERVICE = "metallb-webhook-service"
WAIT_SECONDS = 180
CR_RETRY_SECONDS = 90


def _hide_secrets(doc: Mapping[str, Any]) -> Any:
    if doc.get("kind") != "Secret":
        return dict(doc)
    shown = dict(doc)
    for key in ("data", "stringData"):
        if key in shown:
            shown[key] = {k: "********" for k in shown[key]}
    return shown


def _pruned(current: Any, wanted: Any) -> Any:
    """`current` cut down to the keys `wanted` has (what the API added does not show)."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        return {k: _pruned(current[k], v) for k, v in wanted.items() if k in current}
    if isinstance(wanted, list) and isinstance(current, list):
        return [_pruned(c, w) for c, w in zip(current, wanted, strict=False)] + current[
            len(wanted):]
    return current


class CustomResources(Manifests):
    """Manifests whose check-mode change carries a YAML diff per object (Secrets masked);
    with `manifest` (the docs declaring their CRDs), objects that would be applied are first
    checked against those CRDs' schemas (StepFailed naming every violation)."""

    def __init__(self, name: str, docs: Sequence[Mapping[str, Any]], prefix: str,
                 retry_for: float, manifest: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(name, docs, prefix=prefix, retry_for=retry_for)
        self.manifest = manifest
        self.checked = False  # the objects never change: one validation is enough

    def check_schemas(self) -> None:
        """StepFailed when an object breaks its CRD's schema (validated once per step)."""
        if self.manifest is None or self.checked:
            return
        try:
            schema.check(self.docs, schema.crd_schemas(self.manifest))
        except schema.SchemaError as exc:
            raise StepFailed(str(exc)) from None
        self.checked = True

    def stale(self, facts: Mapping[str, FactResult]) -> bool:
        """Whether an object differs from the cluster's (so the whole List would be applied)."""
        return bool(Manifests.plan(self, facts))

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes = super().plan(facts)
        if not changes:
            return []
        self.check_schemas()
        diffs = []
        for doc, current in zip(self.docs, self.live(facts), strict=True):
            wanted = {k: v for k, v in doc.items() if k != "status"}
            before = None if current is None else yaml.safe_dump(
                _hide_secrets(_pruned(current, wanted)), sort_keys=False)
            after = yaml.safe_dump(_hide_secrets(wanted), sort_keys=False)
            if before != after:
                ref = "/".join(object_ref(doc)[:2])
                diffs.append(unified_diff(ref, before, after))
        return [Change(changes[0].summary, changes[0].actions, "".join(diffs))]


class SchemaGuard(Step):
    """Refuse the run before any change when the objects that would be applied break their
    CRDs' schemas; planned from the first round's reads (the same kubectl get as the
    CustomResources step it guards: one read on the host), nothing to validate when they all
    match the cluster already."""

    name = "Check MetalLB's pools, peers and advertisement against the CRDs' schemas"
    verify = False

    def __init__(self, guarded: CustomResources) -> None:
        self.guarded = guarded

    def facts(self) -> Mapping[str, str]:
        return self.guarded.facts()

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if self.guarded.stale(facts):
            self.guarded.check_schemas()
        return []


class ControllerReady(Step):
    """Ensure MetalLB's controller is Available and its webhook service has endpoints."""

    name = "Ensure MetalLB's controller is Available and its webhook has endpoints"

    def __init__(self, prefix: str, timeout: int = WAIT_SECONDS) -> None:
        self.prefix, self.timeout = prefix, timeout
        self.deploy = object_fact(prefix, "deployment", CONTROLLER, NAMESPACE)
        self.endpoints = object_fact(prefix, "endpoints", WEBHOOK_SERVICE, NAMESPACE)

    def facts(self) -> Mapping[str, str]:
        return {"deploy": self.deploy.command, "endpoints": self.endpoints.command}

    def ready(self, facts: Mapping[str, FactResult]) -> tuple[bool, bool]:
        """(controller Available, webhook has endpoints)."""
        deploy = self.deploy.read(facts, "deploy") or {}
        eps = self.endpoints.read(facts, "endpoints") or {}
        available = any(c.get("type") == "Available" and c.get("status") == "True"
                        for c in (deploy.get("status") or {}).get("conditions") or [])
        endpoints = any(s.get("addresses") for s in eps.get("subsets") or [])
        return available, endpoints

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        available, endpoints = self.ready(facts)
        if available and endpoints:
            return []
        wait = (f"{self.prefix} wait --for=condition=Available --timeout={self.timeout}s "
                f"deployment/{CONTROLLER} -n {NAMESPACE} >/dev/null && "
                f"for i in $(seq {self.timeout // 2}); do "
                f"{self.prefix} get endpoints {WEBHOOK_SERVICE} -n {NAMESPACE} -o json "
                "2>/dev/null | grep -q '\"ip\"' && exit 0; sleep 2; done; "
                f"echo 'no endpoints on {WEBHOOK_SERVICE} after {self.timeout} s' >&2; exit 1")
        what = "controller not Available" if not available else "webhook has no endpoints"
        return [Change(f"wait for MetalLB ({what})", (Action(wait),))]


# microk8s's own metallb addon is enabled on this node (False without microk8s)
MICROK8S_METALLB_ADDON: Fact[bool] = Fact(
    "microk8s metallb addon", "microk8s status -a metallb",
    lambda result: result.ok and result.out.strip() == "enabled")


class NoMicrok8sAddon(Step):
    """Refuse to run while microk8s's own `metallb` addon is enabled (two MetalLBs fight)."""

    name = "Ensure microk8s's metallb addon is off (this runbook owns MetalLB)"
    verify = False

    def facts(self) -> Mapping[str, str]:
        return {"addon": MICROK8S_METALLB_ADDON.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if MICROK8S_METALLB_ADDON.read(facts, "addon"):
            raise StepFailed("microk8s's metallb addon is enabled: it installs its own MetalLB "
                             "and pool, which would fight this runbook's. Run `microk8s disable "
                             "metallb` on the node, then `inv metallb` again")
        return []


def manifest_docs(inventory: Any) -> list[dict[str, Any]]:
    """The cached, verified manifest's objects; StepFailed when `inv metallb.fetch` is due."""
    metallb = metallb_of(inventory)
    assert metallb is not None
    path = fetch.cache_path(metallb.version, metallb.backend)
    lock = fetch.read_lock(fetch.lock_path(Path(inventory.path)))
    pinned = lock.get(metallb.version, {}).get(fetch.manifest_name(metallb.backend))
    if pinned is None:
        raise StepFailed(f"MetalLB {metallb.version} is not pinned in "
                         f"{fetch.lock_path(Path(inventory.path))}: run `inv metallb.fetch` "
                         "first (it pins the manifest's sha256; commit the lock)")
    stale = not path.exists() or fetch.sha256_of(path.read_bytes()) != pinned
    if stale and metallb.source:
        try:  # pinned already: fetched and checked against the pin, as metallb.fetch does
            fetch.fetch(metallb.version, metallb.backend, metallb.source,
                        fetch.lock_path(Path(inventory.path)))
        except fetch.FetchError as exc:
            raise StepFailed(str(exc)) from None
    if not path.exists():
        raise StepFailed(f"no MetalLB {metallb.version} manifest in the cache: run "
                         "`inv metallb.fetch` first")
    data = path.read_bytes()
    if fetch.sha256_of(data) != pinned:
        raise StepFailed(f"{path} does not match its pin in the lock: run `inv metallb.fetch` "
                         "again")
    return load_manifests(data.decode())


def plan(ctx: HostContext) -> Plan:
    """MetalLB's steps on the first server; nothing on the others."""
    inventory = ctx.inventory
    metallb = metallb_of(inventory)
    cluster = (getattr(inventory, "sections", None) or {}).get("cluster")
    if metallb is None or cluster is None:
        raise StepFailed(f"{inventory.path}: metallb needs the `cluster:` and `metallb:` "
                         "sections (see README, metallb)")
    if ctx.host.name != cluster.first_server:
        return Plan()
    prefix = kubectl_on_node(cluster.distribution)
    routers = {r.name: r for r in routers_of(inventory)}
    password = metallb.password()
    if metallb.password_env and password is None:
        raise StepFailed(f"metallb.password.env names {metallb.password_env}, which is not "
                         "set here: export the BGP password in it, then run again")
    docs = manifest_docs(inventory)
    objects = crs.render(metallb, routers, password)
    resources = CustomResources("Ensure MetalLB's pools, peers and advertisement", objects,
                                prefix=prefix, retry_for=CR_RETRY_SECONDS, manifest=docs)
    steps: list[Step] = [SchemaGuard(resources)]
    if cluster.distribution == "microk8s":
        steps.append(NoMicrok8sAddon())
    steps += [
        Manifests(f"Ensure MetalLB {metallb.version} ({metallb.backend}) is installed", docs,
                  prefix=prefix, retry_for=0),
        ControllerReady(prefix),
        resources,
        Manifests("Ensure the demo LoadBalancer Service", demo.objects(inventory),
                  prefix=prefix, retry_for=0),
    ]
    return Plan(steps=steps)


RUNBOOK = Runbook("metallb", ("k3s-server", "microk8s"), plan)
