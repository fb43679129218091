"""kubectl run on a cluster server over SSH: apply manifests, read objects, wait for readiness.

Cluster operations never need a kubectl of a matching version on the operator's machine:
they run the distribution's own (`k3s kubectl`, `microk8s kubectl`) on a server through the
host's session, so they work through `via` jumps too. Manifests travel on stdin as one JSON
`List` (JSON is YAML, every kubectl reads it; nothing is written to the node's disk).

    kube = Kubectl(session, "k3s kubectl")
    kube.apply(docs)                                  # -> ApplyResult(changed, lines)
    kube.apply(docs, retry_for=60)                    # retries while a webhook refuses
    kube.get("nodes")                                 # -> parsed JSON (List or object)
    kube.wait("node", condition="Ready", all_=True, timeout=120)

`Manifests` is the step form: it reads the objects (one kubectl per namespace, in the batch
round trip) and applies only when one is missing or differs from what is wanted, so a converged
cluster gets no apply at all.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed

# how kubectl runs on a node of each distribution: its own, of the cluster's version
ON_NODE = {"k3s": "k3s kubectl", "microk8s": "microk8s kubectl"}


def kubectl_on_node(distribution: str) -> str:
    """The kubectl command on a node of `distribution` (k3s's when it is not known)."""
    return ON_NODE.get(distribution, ON_NODE["k3s"])

WEBHOOK_REFUSAL = ("failed calling webhook", "connection refused", "no endpoints available")
NAMESPACED = {"Namespace": False, "Node": False, "CustomResourceDefinition": False,
              "ClusterRole": False, "ClusterRoleBinding": False, "PriorityClass": False,
              "ValidatingWebhookConfiguration": False, "MutatingWebhookConfiguration": False,
              "StorageClass": False, "IngressClass": False, "APIService": False}


class Runs(Protocol):
    def run(self, command: str, stdin: str | bytes | None = None) -> Any: ...


class KubectlError(StepFailed):
    """kubectl on the server failed; the message has its own words."""


@dataclass
class ApplyResult:
    """What one `kubectl apply` printed: a line per object, and how many changed."""

    lines: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(1 for line in self.lines if not line.endswith(" unchanged"))


def as_list(docs: Iterable[Mapping[str, Any]]) -> str:
    """Manifests as one JSON `List` for `kubectl apply -f -`."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)})


def load_manifests(text: str) -> list[dict[str, Any]]:
    """Every object of a multi-document YAML (or JSON) manifest; `List`s are flattened."""
    import yaml

    out: list[dict[str, Any]] = []
    # libyaml's parser where PyYAML has it: MetalLB's manifest is ~2000 lines (0.3 s in
    # pure Python, every plan), the same safe constructor either way
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for doc in yaml.load_all(text, Loader=loader):
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        elif isinstance(doc, dict):
            out.append(doc)
    return out


def object_ref(doc: Mapping[str, Any], default_namespace: str = "default") -> list[str]:
    """kubectl arguments naming one manifest's object: [kind.group, name, -n, ns]."""
    kind = str(doc.get("kind", ""))
    api = str(doc.get("apiVersion", ""))
    group = api.rpartition("/")[0]
    meta = doc.get("metadata") or {}
    args = [f"{kind.lower()}.{group}" if group else kind.lower(), str(meta.get("name", ""))]
    if NAMESPACED.get(kind, True):
        args += ["-n", str(meta.get("namespace") or default_namespace)]
    return args


def live_object(fact: FactResult) -> Any:
    """The object a `kubectl get -o json` fact read, or None when it is absent or unreadable."""
    try:
        return json.loads(fact.out) if fact.ok else None
    except ValueError:
        return None


def object_fact(prefix: str, kind: str, name: str, namespace: str) -> Fact[Any]:
    """One object as `kubectl get -o json` shows it (`live_object`: None when absent or
    unreadable); `prefix` runs kubectl on the host ("k3s kubectl", "microk8s kubectl")."""
    return Fact(f"{kind} {namespace}/{name}",
                f"{prefix} get {kind} {shlex.quote(name)} -n {shlex.quote(namespace)} -o json",
                live_object)


def contains(current: Any, wanted: Any) -> bool:
    """True when every field of `wanted` is in `current` with the same value (lists compared
    item by item): what the API added (status, defaults, uid) does not count."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            key in current and contains(current[key], value) for key, value in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(current, list) and len(current) == len(wanted)
                and all(contains(c, w) for c, w in zip(current, wanted, strict=True)))
    return bool(current == wanted)


class Kubectl:
    """kubectl commands on one server; `prefix` is how the distribution invokes kubectl."""

    def __init__(self, session: Runs, prefix: str = ON_NODE["k3s"]) -> None:
        self.session = session
        self.prefix = prefix

    def command(self, args: Sequence[str]) -> str:
        return f"{self.prefix} {' '.join(shlex.quote(a) for a in args)}"

    def run(self, args: Sequence[str], stdin: str | None = None) -> Any:
        """Run kubectl; the CommandResult, whatever its exit status."""
        return self.session.run(self.command(args), stdin)

    def check(self, args: Sequence[str], stdin: str | None = None) -> str:
        """Run kubectl; its stdout, or KubectlError with its stderr."""
        done = self.run(args, stdin)
        if not done.ok:
            detail = (done.stderr.strip() or done.stdout.strip())[-1500:]
            raise KubectlError(f"{self.prefix} {args[0]} failed (exit {done.rc}): {detail}")
        return str(done.stdout)

    def get(self, *what: str, namespace: str | None = None, all_namespaces: bool = False,
            ) -> Any:
        args = ["get", *what, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if all_namespaces:
            args.append("-A")
        return json.loads(self.check(args))

    def apply(self, docs: Sequence[Mapping[str, Any]], retry_for: float = 0,
              interval: float = 2.0) -> ApplyResult:
        """Apply `docs`; while a validating webhook refuses them (its pods are starting),
        retry for up to `retry_for` seconds."""
        deadline = time.monotonic() + retry_for
        body = as_list(docs)
        while True:
            done = self.run(["apply", "-f", "-"], body)
            if done.ok:
                return ApplyResult([ln for ln in done.stdout.splitlines() if ln.strip()])
            refused = any(word in done.stderr for word in WEBHOOK_REFUSAL)
            if not refused or time.monotonic() >= deadline:
                detail = done.stderr.strip()[-1500:]
                hint = (f" (still refused after {retry_for:.0f} s: is the webhook's "
                        "deployment running?)" if refused and retry_for else "")
                raise KubectlError(f"{self.prefix} apply failed (exit {done.rc}){hint}: "
                                   f"{detail}")
            time.sleep(interval)

    def delete(self, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        out = self.check(["delete", "--ignore-not-found", "-f", "-"], as_list(docs))
        return [ln for ln in out.splitlines() if ln.strip()]

    def wait(self, what: str, condition: str = "Ready", *, names: Sequence[str] = (),
             all_: bool = False, namespace: str | None = None, selector: str | None = None,
             timeout: float = 120) -> str:
        """`kubectl wait --for=condition=...`; KubectlError naming what did not get there."""
        args = ["wait", f"--for=condition={condition}", f"--timeout={int(timeout)}s"]
        args += [f"{what}/{n}" for n in names] or [what]
        if all_ and not names:
            args.append("--all")
        if selector:
            args += ["-l", selector]
        if namespace:
            args += ["-n", namespace]
        return self.check(args)


def node_status(node: Mapping[str, Any]) -> dict[str, Any]:
    """name, ready (bool), version, internal IP, roles of a Node object."""
    status = node.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    return {"name": node["metadata"]["name"], "ready": ready,
            "version": (status.get("nodeInfo") or {}).get("kubeletVersion"),
            "ip": addresses.get("InternalIP"), "roles": roles}


def parse_nodes(result: FactResult) -> dict[str, dict[str, Any]] | None:
    """`kubectl get nodes -o json` -> {node: its `node_status`}; None when the API did not
    answer (or answered something that is not a list of nodes)."""
    if not result.ok:
        return None
    try:
        items = json.loads(result.out).get("items", [])
    except (ValueError, AttributeError):
        return None
    return {s["name"]: s for s in map(node_status, items)}


def nodes_fact(kubectl: str) -> Fact[dict[str, dict[str, Any]] | None]:
    """Every Node of the cluster, by name, as `kubectl` (e.g. `k3s kubectl`) lists them."""
    return Fact(f"nodes ({kubectl})", f"{kubectl} get nodes -o json", parse_nodes)


def api_group(doc: Mapping[str, Any]) -> str:
    """The API group of an object (`apps` of `apps/v1`; "" for the core group)."""
    return str(doc.get("apiVersion", "")).rpartition("/")[0]


def items_of(fact: FactResult) -> list[dict[str, Any]] | None:
    """The objects a `kubectl get ... -o json` fact read (a List or one object; none when
    it printed nothing), or None when it failed or printed something else."""
    body = live_object(fact)
    if body is None:
        return [] if fact.ok and not fact.out.strip() else None
    if not isinstance(body, dict):
        return None
    if body.get("kind") == "List" or ("items" in body and "kind" not in body):
        return [i for i in body.get("items") or [] if isinstance(i, dict)]
    return [body]


class Manifests(Step):
    """Ensure objects exist as the manifests say (applied only when one differs).

    The objects are read with one `kubectl get KIND/NAME ... --ignore-not-found -o json` per
    namespace (cluster-scoped objects ride along with the first), not one call per object:
    each kubectl is a process start and an API round trip, and a manifest has dozens of
    objects. A read that fails (the API down, a kind not served yet) counts every object it
    names as missing, as a failed read of one object did before.
    """

    def __init__(self, name: str, docs: Sequence[Mapping[str, Any]],
                 prefix: str = ON_NODE["k3s"], retry_for: float = 60) -> None:
        self.name = name
        self.docs = [dict(d) for d in docs]
        self.prefix = prefix
        self.retry_for = retry_for

    def groups(self) -> dict[str, list[int]]:
        """Namespace ("" when none is namespaced) -> indexes of the docs read in its call."""
        spaces: dict[str, list[int]] = {}
        cluster_wide = []
        for index, doc in enumerate(self.docs):
            if NAMESPACED.get(str(doc.get("kind", "")), True):
                namespace = str((doc.get("metadata") or {}).get("namespace") or "default")
                spaces.setdefault(namespace, []).append(index)
            else:
                cluster_wide.append(index)
        if cluster_wide:
            first = next(iter(spaces), "")
            spaces[first] = sorted(spaces.get(first, []) + cluster_wide)
        return spaces

    def facts(self) -> Mapping[str, str]:
        kube = Kubectl(_NoSession(), self.prefix)
        out = {}
        for namespace, indexes in self.groups().items():
            refs = []
            for index in indexes:
                kind_group, name = object_ref(self.docs[index])[:2]
                refs.append(f"{kind_group}/{name}")
            args = ["get", *refs] + (["-n", namespace] if namespace else [])
            out[f"objects {namespace or '-'}"] = kube.command(
                [*args, "--ignore-not-found", "-o", "json"])
        return out

    def live(self, facts: Mapping[str, FactResult]) -> list[Any]:
        """Each doc's object as the cluster has it (None: missing or unreadable), in order."""
        current: list[Any] = [None] * len(self.docs)
        for namespace, indexes in self.groups().items():
            items = items_of(facts[f"objects {namespace or '-'}"]) or []
            for index in indexes:
                doc = self.docs[index]
                name = (doc.get("metadata") or {}).get("name")
                current[index] = next(
                    (item for item in items
                     if item.get("kind") == doc.get("kind") and api_group(item) == api_group(doc)
                     and (item.get("metadata") or {}).get("name") == name), None)
        return current

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        stale = []
        for doc, current in zip(self.docs, self.live(facts), strict=True):
            wanted = {k: v for k, v in doc.items() if k != "status"}
            if current is None or not contains(current, wanted):
                meta = doc.get("metadata") or {}
                stale.append(f"{doc.get('kind')}/{meta.get('name')}"
                             + ("" if current is not None else " (missing)"))
        if not stale:
            return []
        script = apply_script(self.prefix, self.retry_for)
        return [Change(f"apply {', '.join(stale)}", (Action(script, as_list(self.docs)),))]


def apply_script(prefix: str, retry_for: float) -> str:
    """Remote sh that applies the List on stdin; while a webhook refuses it, retries with
    backoff (1, 2, 4, 8, 8 ... s) for up to `retry_for` seconds, then fails saying so."""
    return (f'body=$(cat)\ndelay=1; waited=0; refused=0\nwhile :; do\n'
            f'  if out=$(printf "%s" "$body" | {prefix} apply -f - 2>&1); then '
            'printf "%s\\n" "$out"; [ "$refused" -eq 0 ] || '
            'echo "applied after $refused webhook refusal(s)"; exit 0; fi\n'
            '  case "$out" in *"failed calling webhook"*|*"no endpoints available"*) ;; '
            '*) printf "%s\\n" "$out" >&2; exit 1;; esac\n'
            f'  refused=$((refused + 1)); [ "$waited" -lt {int(retry_for)} ] || break\n'
            '  sleep "$delay"; waited=$((waited + delay)); delay=$((delay * 2)); '
            '[ "$delay" -le 8 ] || delay=8\ndone\n'
            'printf "%s\\n" "$out" >&2\n'
            'echo "still refused by the webhook after $refused tries in $waited s" >&2; exit 1\n')


class _NoSession:
    def run(self, command: str, stdin: str | bytes | None = None) -> Any:
        raise RuntimeError("only used to build command lines")
