"""Check MetalLB objects against the CRDs' own OpenAPI schemas, before anything is sent.

The schemas come from the very manifest `inv metallb` installs (its CustomResourceDefinitions,
per group, version and kind). OpenAPI v3 schemas as Kubernetes writes them are JSON Schema
plus a few `x-kubernetes-*` and `format` hints; they are checked with the jsonschema library
(Draft 7 semantics, formats not enforced, as the API server does not enforce int32 here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SchemaKey = tuple[str, str, str]  # (group, version, kind)


class SchemaError(ValueError):
    """An object breaks its CRD's schema, or no CRD in the manifest declares its kind."""


def crd_schemas(docs: Iterable[Mapping[str, Any]]) -> dict[SchemaKey, dict[str, Any]]:
    """(group, version, kind) -> openAPIV3Schema for every CRD version in `docs`."""
    found: dict[SchemaKey, dict[str, Any]] = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
            if group and kind and schema:
                found[(str(group), str(version["name"]), str(kind))] = schema
    return found


def _key(obj: Mapping[str, Any]) -> SchemaKey:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    return group, version, str(obj.get("kind", ""))


def _name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name', '?')}"


def problems(objects: Iterable[Mapping[str, Any]],
             schemas: Mapping[SchemaKey, dict[str, Any]]) -> list[str]:
    """Every schema violation of `objects` (custom resources only), one line each."""
    from jsonschema import Draft7Validator

    out: list[str] = []
    for obj in objects:
        group, version, kind = _key(obj)
        if not group.endswith("metallb.io"):
            continue  # core kinds (Secret, Service) are the API server's business
        schema = schemas.get((group, version, kind))
        if schema is None:
            known = sorted(f"{g}/{v} {k}" for g, v, k in schemas)
            out.append(f"{_name(obj)}: no CRD in the manifest declares {group}/{version} "
                       f"{kind} (it has: {', '.join(known) or 'none'})")
            continue
        validator = Draft7Validator(schema)
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "(object)"
            out.append(f"{_name(obj)}: {where}: {error.message}")
    return out


def check(objects: Iterable[Mapping[str, Any]],
          schemas: Mapping[SchemaKey, dict[str, Any]]) -> None:
    """Raise SchemaError listing every violation (nothing is sent when one is found)."""
    found = problems(objects, schemas)
    if found:
        raise SchemaError("objects refused by the CRDs' schemas (nothing was applied):\n  "
                          + "\n  ".join(found))
