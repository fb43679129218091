"""The seed's ingress Service of type LoadBalancer (the `ingress-service.yaml` the seed wrote
in nano): namespace `ingress`, selecting the ingress addon's controller pods
(`name: nginx-ingress-microk8s`), ports 80 and 443, optionally a fixed `loadBalancerIP`
(MetalLB, configured by the metallb runbook, hands out the address otherwise).

The manifest is checked against the Kubernetes core/v1 Service schema for the fields it uses
(types, enums, ranges, DNS-1123 names, no unknown field: what `kubectl apply
--validate=strict` refuses) before it is sent; it travels as JSON on stdin to `microk8s
kubectl apply -f -`, only when the live Service differs in what we set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runbooks.common.kubectl import ON_NODE, object_fact
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed

NAME = NAMESPACE = "ingress"
SELECTOR = {"name": "nginx-ingress-microk8s"}
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

# core/v1 Service, the fields used here (from the Kubernetes OpenAPI definitions:
# io.k8s.api.core.v1.Service, ServiceSpec, ServicePort, ObjectMeta).
SERVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Service"},
        "metadata": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
                "namespace": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object", "required": ["ports"], "additionalProperties": False,
            "properties": {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
                "selector": {"type": "object", "additionalProperties": {"type": "string"}},
                "loadBalancerIP": {"type": "string",
                                   "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
                "externalTrafficPolicy": {"enum": ["Cluster", "Local"]},
                "ports": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["port"], "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "maxLength": 63,
                                     "pattern": DNS1123_LABEL},
                            "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                            "port": PORT,
                            "targetPort": {"anyOf": [
                                PORT, {"type": "string", "maxLength": 15,
                                       "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}]},
                            "nodePort": PORT,
                        },
                    },
                },
            },
        },
    },
}


def service(address: str | None) -> dict[str, Any]:
    """The Service as data (`address`: a fixed loadBalancerIP, else MetalLB picks one)."""
    spec: dict[str, Any] = {"type": "LoadBalancer", "selector": dict(SELECTOR)}
    if address:
        spec["loadBalancerIP"] = address
    spec["ports"] = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80},
                     {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 443}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "greenroom"}},
            "spec": spec}


def schema_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Where `manifest` breaks the Service schema, as `spec.ports[0].port: ...` lines."""
    from jsonschema import Draft7Validator, FormatChecker

    out = []
    for error in sorted(Draft7Validator(SERVICE_SCHEMA, format_checker=FormatChecker())
                        .iter_errors(manifest), key=lambda e: list(map(str, e.path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        out.append(f"Service{where or ''}: {error.message}")
    return out


def _ours(live: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a live Service that we set (ports without what the server adds)."""
    spec = live.get("spec", {}) if isinstance(live, Mapping) else {}
    keep = ("name", "protocol", "port", "targetPort")
    return {"type": spec.get("type"), "selector": spec.get("selector"),
            "loadBalancerIP": spec.get("loadBalancerIP"),
            "ports": [{k: p.get(k) for k in keep} for p in spec.get("ports", [])],
            "labels": (live.get("metadata", {}).get("labels") or {}).get(
                "app.kubernetes.io/managed-by")}


# the ingress Service as the cluster has it (None: not there yet)
LIVE = object_fact(ON_NODE["microk8s"], "service", NAME, NAMESPACE)


class IngressService(Step):
    """On the seed node: the ingress LoadBalancer Service applied when it differs."""

    def __init__(self, address: str | None) -> None:
        self.manifest = service(address)
        self.name = ("Ensure Service ingress/ingress type LoadBalancer (ports 80, 443"
                     f"{', address ' + address if address else ''})")
        errors = schema_errors(self.manifest)
        if errors:  # our own rendering is wrong: say so before anything is sent
            raise StepFailed("the ingress Service breaks the Kubernetes schema:\n  "
                             + "\n  ".join(errors))

    def facts(self) -> Mapping[str, str]:
        return {"live": LIVE.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        live = LIVE.read(facts, "live")
        if live is not None and _ours(live) == _ours(self.manifest):
            return []
        verb = "update" if live is not None else "create"
        return [Change(f"{verb} Service {NAMESPACE}/{NAME} (type LoadBalancer)",
                       (Action("microk8s kubectl apply -f -",
                               json.dumps(self.manifest, indent=2) + "\n"),),
                       diff=json.dumps(self.manifest["spec"], indent=2))]

