"""The inventory's `demo:` section: what demo.reset removes and runs, and demo.check's limits.

    demo:
      clock_tolerance: 5          # seconds a host's clock may differ from this machine's
      disk_min_free: 10           # percent of / that must be free on every host
      images: files/registry/images.yaml   # the image list the registry must hold (its .lock
                                  # beside it gives the digests; default: the site's list as
                                  # registry.load-images builds it); relative to the repository
      images_from: /media/usb/images       # optional: an OCI layout (registry.save) that
                                  # demo.reset pushes missing images from, offline
      kubectl: kubectl            # how to run kubectl on a cluster host (k3s kubectl, ...)
      workloads:                  # removed by demo.reset, on the first cluster host
        namespaces: [podinfo]
        manifests: [files/demo/podinfo.yaml]
      reset:                      # the site's own reset steps, each guarded
        - name: Remove the last run's MicroVM state
          hosts: pi               # host or role names, comma separated
          run: rm -rf /var/lib/flintlock/vm
          only_if: test -e /var/lib/flintlock/vm   # or unless: <a test that says it is done>

Declared in runbooks/common/schema/demo.py, so the inventory loader checks it with the rest
of the file. `parse_section(raw)` checks it and returns (Section, problems); each problem is
(key path under demo, message) for the inventory loader to report with file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEYS = ("clock_tolerance", "disk_min_free", "images", "images_from", "kubectl", "workloads",
        "reset")
STEP_KEYS = ("name", "hosts", "run", "only_if", "unless")


@dataclass(frozen=True)
class ResetStep:
    """One site reset step: a command run on some hosts when its guard says it is needed."""

    name: str
    hosts: str
    run: str
    only_if: str | None = None
    unless: str | None = None


@dataclass(frozen=True)
class Section:
    """The checked `demo:` section, with defaults."""

    clock_tolerance: float = 5.0
    disk_min_free: int = 10
    images: str | None = None  # None: the registry's own list for the site
    images_from: str | None = None
    kubectl: str = "kubectl"
    namespaces: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    reset: tuple[ResetStep, ...] = ()


Problem = tuple[tuple[Any, ...], str]


def _names(value: Any, path: tuple[Any, ...], problems: list[Problem]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append((path, "expected a list of names, like [podinfo, demo]"))
        return ()
    return tuple(value)


def _number(value: Any, path: tuple[Any, ...], low: float, high: float, default: float,
            problems: list[Problem]) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.append((path, f"expected a number from {low:g} to {high:g}"))
        return default
    return float(value)


def _steps(value: Any, problems: list[Problem]) -> tuple[ResetStep, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append((("reset",), "expected a list of steps: - {name, hosts, run, only_if}"))
        return ()
    steps = []
    for index, item in enumerate(value):
        path = ("reset", index)
        if not isinstance(item, Mapping):
            problems.append((path, "expected a mapping: {name, hosts, run, only_if or unless}"))
            continue
        unknown = [k for k in item if k not in STEP_KEYS]
        for key in unknown:
            problems.append(((*path, key), f"unknown key; known: {', '.join(STEP_KEYS)}"))
        texts = {k: item.get(k) for k in STEP_KEYS}
        for key in ("name", "hosts", "run"):
            if not isinstance(texts[key], str) or not texts[key]:
                problems.append(((*path, key), "required: a non-empty string"))
        guards = [k for k in ("only_if", "unless") if item.get(k) is not None]
        if len(guards) != 1:
            problems.append((path, "give exactly one guard, only_if: (run when this test "
                                   "succeeds) or unless: (run when it fails), so that a "
                                   "second reset does nothing"))
        elif not isinstance(item[guards[0]], str):
            problems.append(((*path, guards[0]), "expected a shell test as a string"))
        if unknown or len(guards) != 1 or not all(isinstance(texts[k], str) and texts[k]
                                                  for k in ("name", "hosts", "run")):
            continue
        steps.append(ResetStep(str(texts["name"]), str(texts["hosts"]), str(texts["run"]),
                               item.get("only_if"), item.get("unless")))
    return tuple(steps)


def parse_section(raw: Any) -> tuple[Section, list[Problem]]:
    """Check the raw `demo:` mapping (None when absent); (section, problems)."""
    problems: list[Problem] = []
    if raw is None:
        return Section(), problems
    if not isinstance(raw, Mapping):
        return Section(), [((), "expected a mapping, like demo: {workloads: {namespaces: "
                                "[podinfo]}}")]
    for key in raw:
        if key not in KEYS:
            problems.append(((key,), f"unknown key; known: {', '.join(KEYS)}"))
    workloads = raw.get("workloads") or {}
    if not isinstance(workloads, Mapping):
        problems.append((("workloads",), "expected {namespaces: [...], manifests: [...]}"))
        workloads = {}
    for key in workloads:
        if key not in ("namespaces", "manifests"):
            problems.append((("workloads", key), "unknown key; known: namespaces, manifests"))
    texts = {}
    for key in ("images", "images_from", "kubectl"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(((key,), "expected a non-empty string"))
            value = None
        texts[key] = value
    section = Section(
        clock_tolerance=_number(raw.get("clock_tolerance"), ("clock_tolerance",), 0.1, 3600,
                                5.0, problems),
        disk_min_free=int(_number(raw.get("disk_min_free"), ("disk_min_free",), 0, 99, 10,
                                  problems)),
        images=texts["images"],
        images_from=texts["images_from"],
        kubectl=texts["kubectl"] or "kubectl",
        namespaces=_names(workloads.get("namespaces"), ("workloads", "namespaces"), problems),
        manifests=_names(workloads.get("manifests"), ("workloads", "manifests"), problems),
        reset=_steps(raw.get("reset"), problems),
    )
    return section, problems


def section_of(inventory: Any) -> Section:
    """The inventory's checked demo section (defaults when it has none)."""
    sections = getattr(inventory, "sections", None)
    value = sections.get("demo") if isinstance(sections, Mapping) else None
    return value if isinstance(value, Section) else parse_section(value)[0]


def unknown_targets(section: Section, hosts: Mapping[str, Any]) -> list[Problem]:
    """Reset steps whose `hosts:` names neither a host nor a role of the inventory."""
    from runbooks.core.inventory_model import KNOWN_ROLES

    problems: list[Problem] = []
    for index, step in enumerate(section.reset):
        for item in (part.strip() for part in step.hosts.split(",") if part.strip()):
            if item not in hosts and item not in KNOWN_ROLES:
                problems.append((("reset", index, "hosts"),
                                 f"{item!r} is neither a host nor a role; hosts: "
                                 f"{', '.join(hosts)}"))
    return problems
