"""Named cluster reads of one namespace in one kubectl: what a host's batch asks as several.

MetalLB's plan reads its objects with one `kubectl get KIND/NAME ... -n NS --ignore-not-found
-o json` per step and namespace (runbooks/common/kubectl.py, `Manifests`): the install
manifest's objects and the custom resources are two steps, so two kubectl processes (on a
Pi 0.3-0.5 s each; in the lab a Python start of the k3s double each) read the same
namespace. demo.check only reads: `merge` asks them as ONE get of every object they name,
and `split` gives each asker the items it named, as a List, as kubectl prints a get of
several objects. Only gets of two or more plain KIND/NAME references are merged (a get of
one object prints the object itself, or nothing); when the merged read fails (the API down,
a kind not served yet: kubectl then refuses the whole call) each asker is read on its own,
so it fails or answers exactly as it would have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from runbooks.core.facts import FactResult

_GET = re.compile(r"(?P<kubectl>[a-z0-9 ./-]*kubectl) get (?P<refs>[a-z0-9.-]+/[a-z0-9.-]+"
                  r"(?: [a-z0-9.-]+/[a-z0-9.-]+)+) -n (?P<namespace>[a-z0-9-]+) "
                  r"--ignore-not-found -o json")

Reread = Callable[[Mapping[str, str]], dict[str, FactResult]]


def refs_of(command: str) -> tuple[str, str, list[str]] | None:
    """(kubectl, namespace, KIND[.GROUP]/NAME references) of a mergeable get, else None."""
    found = _GET.fullmatch(command.strip())
    if found is None:
        return None
    return found["kubectl"], found["namespace"], found["refs"].split()


def _refs(command: str) -> list[str]:
    found = refs_of(command)
    return found[2] if found is not None else []


def _matches(item: object, ref: str) -> bool:
    if not isinstance(item, dict):
        return False
    resource, _, name = ref.partition("/")
    kind, _, group = resource.partition(".")
    version = str(item.get("apiVersion", ""))
    return (str(item.get("kind", "")).lower() == kind
            and (version.rpartition("/")[0] if "/" in version else "") == group
            and (item.get("metadata") or {}).get("name") == name)


def merge(commands: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(`commands` with every mergeable get of the same kubectl and namespace replaced by
    one get of all their references, {merged command: the commands it stands for})."""
    groups: dict[tuple[str, str], list[str]] = {}
    for command in dict.fromkeys(commands.values()):
        found = refs_of(command)
        if found is not None:
            groups.setdefault((found[0], found[1]), []).append(command)
    replaced: dict[str, str] = {}
    stands: dict[str, list[str]] = {}
    for (kubectl, namespace), asked in groups.items():
        if len(asked) < 2:
            continue
        refs = list(dict.fromkeys(r for c in asked for r in _refs(c)))
        one = f"{kubectl} get {' '.join(refs)} -n {namespace} --ignore-not-found -o json"
        stands[one] = asked
        replaced.update({c: one for c in asked})
    out = {key: replaced.get(command, command) for key, command in commands.items()}
    return out, stands


def split(commands: Mapping[str, str], merged: Mapping[str, str],
          stands: Mapping[str, list[str]], facts: Mapping[str, FactResult],
          reread: Reread) -> dict[str, FactResult]:
    """The facts of `commands` (by key) from those read for `merged` (by key): a merged
    read's items handed to each asker; a failed one's askers read again on their own
    (`reread`, one round trip for all of them)."""
    answers: dict[str, FactResult] = {}
    again: dict[str, str] = {}
    for key, command in commands.items():
        one = merged[key]
        if one not in stands:
            answers[key] = facts[key]
            continue
        result = facts[key]
        body = None
        if result.ok:
            try:
                body = json.loads(result.out)
            except ValueError:
                body = None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            again[key] = command
            continue
        mine = [i for i in items if any(_matches(i, r) for r in _refs(command))]
        answers[key] = FactResult(0, json.dumps({"apiVersion": "v1", "kind": "List",
                                                 "items": mine, "metadata": {}}, indent=4)
                                  + "\n")
    if again:
        answers.update(reread(again))
    return answers
