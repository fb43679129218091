#!/usr/bin/env python3
"""A DOUBLE of the k3s binary, for the virtual lab only: never install it on a real site.

k3s cannot run in the lab's guests (no kubelet privileges, no real binary reachable), so the
lab's release site serves this program under k3s's asset names. It behaves like k3s at the
edges greenroom touches (see runbooks/lab/doubles/README.md):

  k3s --version | k3s -v                 version lines like k3s's
  k3s server [flags]                     long-running; reads /etc/rancher/k3s/config.yaml and
                                         K3S_* env; writes the token, node-token, k3s.yaml, TLS;
                                         an HTTPS endpoint on 6443 (/cacerts, /ping, agent join
                                         with the token as password: 401 when it is wrong)
  k3s agent [flags]                      long-running; joins K3S_URL with K3S_TOKEN, retries,
                                         heartbeats; its node goes NotReady 40 s after it stops
  k3s kubectl ... | kubectl ...          get/apply/delete/wait/version on an object store kept
                                         by the server (as the API would keep the objects)

Runs with the guests' python3 (stdlib only; openssl for the TLS certificate).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.server

# http.server, ssl, socket, subprocess, threading, signal and urllib are imported where the
# server or the agent uses them, hashlib and secrets (OpenSSL's library loaded: ~8 ms of CPU)
# where a pod's name, a token or a uid is made: `k3s kubectl get ...` (a fact of every
# converged run) starts without them

VERSION = "v1.34.3+k3s1"  # launcher.py sets the version the lab's release site serves
COMMIT = "d0ub1e00"
DOUBLE = "greenroom-lab-double"
DATA_DIR = Path(os.environ.get("K3S_DOUBLE_ROOT", "/")) / "var/lib/rancher/k3s"
ETC_DIR = Path(os.environ.get("K3S_DOUBLE_ROOT", "/")) / "etc/rancher"
NODE_GRACE = 40.0  # seconds without heartbeat before a node is NotReady (kubelet: 40 s)
HEARTBEAT = 5.0
JOIN_RETRY = 0.5  # an agent not joined yet tries again this soon (a server starting)
READY_DELAY = float(os.environ.get("K3S_DOUBLE_READY_SECONDS", "6"))


def sha256_hex(data: bytes) -> str:
    """sha256 of `data`, hex: by CPython's own sha256 where it has one (no OpenSSL loaded for
    a `kubectl get` that names pods), else hashlib's (the same digest)."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef]  # 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def token_hex(count: int) -> str:
    """`secrets.token_hex`, imported only where a token or a uid is made."""
    import secrets

    return secrets.token_hex(count)


# -- logging and systemd ----------------------------------------------------------------------

def log(level: str, msg: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stderr.write(f'time="{stamp}" level={level} msg="{msg}"\n')
    sys.stderr.flush()


def sd_notify(state: str) -> None:
    """Tell systemd we are ready (Type=notify units), like k3s does."""
    import socket

    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    if target.startswith("@"):
        target = "\0" + target[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(target)
        s.sendall(state.encode())


# -- a small YAML reader (config.yaml, registries.yaml; the guests have no PyYAML) ------------

def _scalar(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    if text[0] in "\"'":
        quote = text[0]
        end = text.rfind(quote)
        inner = text[1:end] if end > 0 else text[1:]
        return json.loads(f'"{inner}"') if quote == '"' else inner.replace("''", "'")
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part) for part in _split_flow(inner)] if inner else []
    if text.startswith("{") and text.endswith("}"):
        out = {}
        for part in _split_flow(text[1:-1]):
            key, _, value = part.partition(":")
            out[str(_scalar(key))] = _scalar(value)
        return out
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _split_flow(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, "", ""
    for ch in text:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current)
    return parts


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def mini_yaml(text: str) -> Any:
    """Block mappings, block/flow sequences and plain or quoted scalars: enough for the
    config files k3s reads. JSON is YAML too, so JSON text is accepted as it is."""
    if text.lstrip().startswith(("{", "[")):
        return json.loads(text)
    lines = []
    for raw in text.splitlines():
        if raw.strip() in ("---", "...") and not raw.startswith(" "):
            continue
        stripped = _strip_comment(raw).rstrip()
        if stripped.strip():
            lines.append((len(stripped) - len(stripped.lstrip()), stripped.strip()))
    value, _ = _block(lines, 0, lines[0][0] if lines else 0)
    return value


def _block(lines: list[tuple[int, str]], pos: int, indent: int) -> tuple[Any, int]:
    if pos >= len(lines):
        return None, pos
    if lines[pos][1].startswith("- ") or lines[pos][1] == "-":
        items: list[Any] = []
        while pos < len(lines) and lines[pos][0] == indent and lines[pos][1][:1] == "-":
            rest = lines[pos][1][1:].strip()
            if not rest:
                value, pos = _block(lines, pos + 1, lines[pos + 1][0] if pos + 1 < len(lines)
                                    else indent + 2)
                items.append(value)
            elif re.match(r"^[^\"'\[{]\S*:(\s|$)", rest):
                # "- key: value" starts a mapping whose keys sit at indent + 2
                sub = [(indent + 2, rest)]
                pos += 1
                while pos < len(lines) and lines[pos][0] > indent:
                    sub.append(lines[pos])
                    pos += 1
                value, _ = _block(sub, 0, indent + 2)
                items.append(value)
            else:
                items.append(_scalar(rest))
                pos += 1
        return items, pos
    mapping: dict[str, Any] = {}
    while pos < len(lines) and lines[pos][0] == indent:
        key, sep, rest = _key_value(lines[pos][1])
        if not sep:
            raise ValueError(f"cannot read line {lines[pos][1]!r}")
        key = str(_scalar(key))
        pos += 1
        if rest.strip():
            mapping[key] = _scalar(rest)
        elif pos < len(lines) and (lines[pos][0] > indent or lines[pos][1][:1] == "-"):
            mapping[key], pos = _block(lines, pos, lines[pos][0])
        else:
            mapping[key] = None
    return mapping, pos


def _key_value(line: str) -> tuple[str, str, str]:
    """Split "key: value" at the first ':' followed by a space or the end of the line
    (so "192.168.10.2:5001:" is a key); quoted keys are kept whole."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and i == 0:
            quote = ch
        elif ch == ":" and (i + 1 == len(line) or line[i + 1] in " \t"):
            return line[:i], ":", line[i + 1:]
    return line, "", ""


def load_documents(text: str) -> list[Any]:
    """Kubernetes manifests: JSON (one value, or several concatenated), or YAML documents
    (with PyYAML when the host has it, else the small reader above)."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        decoder, docs, index = json.JSONDecoder(), [], 0
        while index < len(stripped):
            value, index = decoder.raw_decode(stripped, index)
            docs.append(value)
            while index < len(stripped) and stripped[index].isspace():
                index += 1
        return docs
    try:
        import yaml  # type: ignore[import-untyped]

        return [d for d in yaml.safe_load_all(text) if d is not None]
    except ImportError:
        chunks = re.split(r"(?m)^---\s*$", text)
        return [d for d in (mini_yaml(c) for c in chunks if c.strip()) if d is not None]


# -- configuration: flags, config.yaml and environment, as k3s merges them --------------------

LIST_FLAGS = {"disable", "tls-san", "node-label", "node-taint", "kube-apiserver-arg",
              "kubelet-arg", "node-ip"}
BOOL_FLAGS = {"cluster-init", "disable-default-registry-endpoint", "debug",
              "write-kubeconfig-mode-only", "flannel-ipv6-masq", "prefer-bundled-bin",
              "disable-network-policy", "disable-cloud-controller", "secrets-encryption"}


def parse_flags(args: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise SystemExit(f"k3s: unexpected argument {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if key in BOOL_FLAGS:
                value = "true"
            else:
                i += 1
                if i >= len(args):
                    raise SystemExit(f"k3s: flag needs an argument: --{key}")
                value = args[i]
        if key in LIST_FLAGS:
            out.setdefault(key, []).extend(v for v in value.split(",") if v)
        elif key in BOOL_FLAGS:
            out[key] = value.lower() in ("true", "1", "yes")
        else:
            out[key] = value
        i += 1
    return out


def load_config(flags: dict[str, Any]) -> dict[str, Any]:
    path = Path(flags.get("config") or os.environ.get("K3S_CONFIG_FILE")
                or ETC_DIR / "k3s/config.yaml")
    config: dict[str, Any] = {}
    if path.exists():
        loaded = mini_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"k3s: {path}: expected a mapping")
        config.update(loaded)
    for key, value in flags.items():
        if key in LIST_FLAGS and key in config:
            existing = config[key] if isinstance(config[key], list) else [config[key]]
            config[key] = existing + value
        else:
            config[key] = value
    for env, key in (("K3S_TOKEN", "token"), ("K3S_URL", "server"),
                     ("K3S_TOKEN_FILE", "token-file"), ("K3S_NODE_NAME", "node-name")):
        if os.environ.get(env) and key not in config:
            config[key] = os.environ[env]
    if config.get("token-file") and not config.get("token"):
        config["token"] = Path(config["token-file"]).read_text().strip()
    for key in LIST_FLAGS:
        if key in config and not isinstance(config[key], list):
            config[key] = [v for v in str(config[key]).split(",") if v]
    return config


def node_name(config: dict[str, Any]) -> str:
    import socket

    return str(config.get("node-name") or socket.gethostname())


def node_ip(config: dict[str, Any]) -> str:
    import subprocess

    ips = config.get("node-ip") or []
    if ips:
        return str(ips[0])
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        words = line.split()
        if "inet" in words and not words[1].startswith("mgmt"):
            return words[words.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


def split_token(token: str) -> tuple[str | None, str]:
    """(CA hash or None, password) of a full `K10<hash>::<user>:<password>` or a short token."""
    match = re.fullmatch(r"K10([0-9a-f]{64})::[^:]+:(.+)", token)
    if match:
        return match.group(1), match.group(2)
    return None, token


# -- registries.yaml -> containerd hosts.toml, as k3s renders it ------------------------------

def render_registries(config: dict[str, Any]) -> list[str]:
    """Write agent/etc/containerd/certs.d/<host>/hosts.toml from registries.yaml."""
    path = ETC_DIR / "k3s/registries.yaml"
    certs = DATA_DIR / "agent/etc/containerd/certs.d"
    written = []
    data = mini_yaml(path.read_text()) if path.exists() else {}
    for host, mirror in ((data or {}).get("mirrors") or {}).items():
        endpoints = (mirror or {}).get("endpoint") or []
        lines = []
        if not config.get("disable-default-registry-endpoint"):
            lines.append(f'server = "https://{host}"' if host != "docker.io"
                         else 'server = "https://registry-1.docker.io"')
        for endpoint in endpoints:
            lines += ["", f'[host."{endpoint}"]', '  capabilities = ["pull", "resolve"]']
        folder = certs / host
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hosts.toml").write_text("# File generated by k3s. DO NOT EDIT.\n"
                                           + "\n".join(lines) + "\n")
        written.append(host)
    return written


def import_images() -> None:
    images = DATA_DIR / "agent/images"
    for tarball in sorted(images.glob("*.tar*")) if images.is_dir() else []:
        log("info", f"Imported images from {tarball} in 1.0s")


# -- the object store (server side) ------------------------------------------------------------

BUILTIN_KINDS: dict[str, tuple[str, str, bool]] = {
    # kind: (apiVersion group, plural, namespaced)
    "Namespace": ("", "namespaces", False), "Node": ("", "nodes", False),
    "Pod": ("", "pods", True), "Service": ("", "services", True),
    "Endpoints": ("", "endpoints", True), "ConfigMap": ("", "configmaps", True),
    "Secret": ("", "secrets", True), "ServiceAccount": ("", "serviceaccounts", True),
    "Deployment": ("apps", "deployments", True), "DaemonSet": ("apps", "daemonsets", True),
    "StatefulSet": ("apps", "statefulsets", True),
    "Role": ("rbac.authorization.k8s.io", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings", False),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions", False),
    "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io",
                                       "validatingwebhookconfigurations", False),
    "MutatingWebhookConfiguration": ("admissionregistration.k8s.io",
                                     "mutatingwebhookconfigurations", False),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets", True),
    "Job": ("batch", "jobs", True),
    "HelmChart": ("helm.cattle.io", "helmcharts", True),
    "Addon": ("k3s.cattle.io", "addons", True),
}
ALIASES = {"no": "Node", "po": "Pod", "svc": "Service", "ns": "Namespace", "ep": "Endpoints",
           "cm": "ConfigMap", "deploy": "Deployment", "ds": "DaemonSet", "sts": "StatefulSet",
           "sa": "ServiceAccount", "crd": "CustomResourceDefinition", "crds":
           "CustomResourceDefinition", "pdb": "PodDisruptionBudget"}


class Store:
    """The cluster's objects in one JSON file, read and written under a lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or DATA_DIR / "server/db/state.json"

    @contextlib.contextmanager
    def locked(self, write: bool = True):  # type: ignore[no-untyped-def]
        if not self.path.exists():
            raise FileNotFoundError(self.path)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            data = json.loads(self.path.read_text() or "{}")
            data.setdefault("objects", {})
            data.setdefault("crds", {})
            yield data
            if write:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                tmp.replace(self.path)

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self.path.write_text(json.dumps({"objects": {}, "crds": {}}))


def kinds(data: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    known = dict(BUILTIN_KINDS)
    for crd in data.get("crds", {}).values():
        known[crd["kind"]] = (crd["group"], crd["plural"], crd["namespaced"])
    return known


def resolve_kind(data: dict[str, Any], word: str) -> str | None:
    """`deployments`, `deployment`, `deploy`, `deployments.apps`, `Deployment` -> kind."""
    word = word.split(".", 1)[0] if "." in word else word
    word = ALIASES.get(word, word)
    for kind, (_, plural, _) in kinds(data).items():
        if word.lower() in (kind.lower(), plural, plural.rstrip("s")):
            return kind
    return None


def key_of(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_of(obj: dict[str, Any]) -> float:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return 0.0
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds // 3600)}h"


# -- derived state: what controllers and kubelets would have done ------------------------------

def node_ready(node: dict[str, Any]) -> bool:
    beat = node.get("status", {}).get("x-double-heartbeat", 0)
    return bool(node.get("status", {}).get("x-double-up")) and time.time() - beat < NODE_GRACE


def with_status(data: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API would return it now (status computed from time and nodes)."""
    obj = json.loads(json.dumps(obj))
    kind = obj.get("kind")
    if kind == "Node":
        ready = node_ready(obj)
        status = obj.setdefault("status", {})
        status.pop("x-double-up", None)
        beat = status.pop("x-double-heartbeat", 0)
        status["conditions"] = [{
            "type": "Ready", "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status" if ready
            else "Kubelet stopped posting node status.",
            "lastHeartbeatTime": datetime.fromtimestamp(beat, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ") if beat else None}]
    elif kind in ("Deployment", "StatefulSet"):
        replicas = int(obj.get("spec", {}).get("replicas", 1))
        count = replicas if workload_ready(data, obj) else 0
        obj["status"] = {"replicas": replicas, "readyReplicas": count,
                         "availableReplicas": count, "updatedReplicas": replicas,
                         "observedGeneration": obj["metadata"].get("generation", 1),
                         "conditions": [{"type": "Available",
                                         "status": "True" if count == replicas else "False"},
                                        {"type": "Progressing", "status": "True"}]}
    elif kind == "DaemonSet":
        nodes = [n for n in objects_of(data, "Node") if node_ready(n)]
        count = len(nodes) if workload_ready(data, obj) else 0
        obj["status"] = {"desiredNumberScheduled": len(nodes), "numberReady": count,
                         "numberAvailable": count, "currentNumberScheduled": len(nodes),
                         "updatedNumberScheduled": len(nodes)}
    elif kind == "CustomResourceDefinition":
        obj["status"] = {"conditions": [{"type": "Established", "status": "True"},
                                        {"type": "NamesAccepted", "status": "True"}]}
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif kind == "Job":
        obj["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    elif kind == "Service" and obj.get("spec", {}).get("type") == "LoadBalancer":
        address = load_balancer_ips(data).get(key_of("Service", obj["metadata"].get(
            "namespace", "default"), obj["metadata"]["name"]))
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": address}] if address else []}}
    return obj


# MetalLB's controller, as the double models it: once its manifest's `controller` Deployment
# (namespace metallb-system) is Available, every Service of type LoadBalancer gets an address
# from the IPAddressPools (autoAssign ones, by pool name, lowest address first; a
# `metallb.universe.tf/loadBalancerIPs` annotation or spec.loadBalancerIP asks for one, from
# any pool).
# Derived like everything else here: Services in creation order, so an address stays put
# while the Services before it stay.
METALLB_CONTROLLER = "Deployment/metallb-system/controller"


def _pool_addresses(pool: dict[str, Any]) -> list[str]:
    """Every address of an IPAddressPool (CIDRs and first-last ranges), in order."""
    import ipaddress

    out: list[str] = []
    for item in pool.get("spec", {}).get("addresses", []):
        text = str(item)
        if "-" in text:
            first, last = (int(ipaddress.ip_address(t.strip())) for t in text.split("-", 1))
            out += [str(ipaddress.ip_address(n)) for n in range(first, last + 1)]
        else:
            out += [str(a) for a in ipaddress.ip_network(text, strict=False)]
    return out


def load_balancer_ips(data: dict[str, Any]) -> dict[str, str]:
    """Service key -> the address MetalLB's controller would have given it."""
    controller = data["objects"].get(METALLB_CONTROLLER)
    if controller is None or not workload_ready(data, controller):
        return {}
    pools = sorted(objects_of(data, "IPAddressPool"), key=lambda p: p["metadata"]["name"])
    auto = [a for p in pools if p.get("spec", {}).get("autoAssign", True) is not False
            for a in _pool_addresses(p)]
    free = set(a for p in pools for a in _pool_addresses(p))
    taken: dict[str, str] = {}
    services = [s for s in objects_of(data, "Service")
                if s.get("spec", {}).get("type") == "LoadBalancer"]
    order = sorted(range(len(services)), key=lambda i: (
        services[i]["metadata"].get("creationTimestamp", ""), i))  # then the store's order
    for service in (services[i] for i in order):
        meta = service["metadata"]
        asked = (meta.get("annotations", {}).get("metallb.universe.tf/loadBalancerIPs")
                 or service["spec"].get("loadBalancerIP"))
        choice = (asked if asked in free else None) if asked else next(
            (a for a in auto if a in free), None)
        if choice is not None:
            free.discard(choice)
            taken[key_of("Service", meta.get("namespace", "default"), meta["name"])] = choice
    return taken


def workload_ready(data: dict[str, Any], obj: dict[str, Any]) -> bool:
    if not any(node_ready(n) for n in objects_of(data, "Node")):
        return False
    delay = float(obj["metadata"].get("annotations", {}).get(
        "double.greenroom/ready-seconds", READY_DELAY))
    return age_of(obj) >= delay


def objects_of(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [o for k, o in data["objects"].items() if k.startswith(kind + "/")]


def pods(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Pods of every workload (one per replica, one per Ready node for DaemonSets)."""
    out = [with_status(data, p) for p in objects_of(data, "Pod")]
    nodes = sorted(n["metadata"]["name"] for n in objects_of(data, "Node") if node_ready(n))
    for workload in [*objects_of(data, "Deployment"), *objects_of(data, "StatefulSet"),
                     *objects_of(data, "DaemonSet")]:
        meta = workload["metadata"]
        ready = workload_ready(data, workload)
        suffix = sha256_hex(meta["name"].encode())
        if workload["kind"] == "DaemonSet":
            names = [(f"{meta['name']}-{suffix[i:i + 5]}", node) for i, node in
                     enumerate(nodes)]
        elif workload["kind"] == "StatefulSet":
            names = [(f"{meta['name']}-{i}", nodes[i % len(nodes)] if nodes else None)
                     for i in range(int(workload.get("spec", {}).get("replicas", 1)))]
        else:
            names = [(f"{meta['name']}-{suffix[:10]}-{suffix[10 + 5 * i:15 + 5 * i]}",
                      nodes[i % len(nodes)] if nodes else None)
                     for i in range(int(workload.get("spec", {}).get("replicas", 1)))]
        template = workload.get("spec", {}).get("template", {})
        for name, node in names:
            phase = "Running" if ready else "Pending"
            out.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": meta.get("namespace", "default"),
                             "labels": dict(template.get("metadata", {}).get("labels", {})),
                             "creationTimestamp": meta.get("creationTimestamp"),
                             "ownerReferences": [{"kind": workload["kind"],
                                                  "name": meta["name"]}]},
                "spec": {"nodeName": node, "containers": template.get("spec", {}).get(
                    "containers", [])},
                "status": {"phase": phase, "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}]}})
    return out


def endpoints(data: dict[str, Any], namespace: str, name: str) -> dict[str, Any] | None:
    service = data["objects"].get(key_of("Service", namespace, name))
    if service is None:
        return None
    selector = service.get("spec", {}).get("selector") or {}
    ready = [p for p in pods(data) if p["metadata"]["namespace"] == namespace and selector
             and matches(p["metadata"].get("labels", {}), selector)
             and p["status"]["phase"] == "Running"]
    subsets = []
    if ready:
        subsets = [{"addresses": [{"ip": f"10.42.0.{10 + i}", "targetRef": {
            "kind": "Pod", "name": p["metadata"]["name"]}} for i, p in enumerate(ready)],
            "ports": [{"port": p.get("targetPort", p.get("port")), "protocol": "TCP"}
                      for p in service.get("spec", {}).get("ports", [])]}]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace,
                         "creationTimestamp": service["metadata"].get("creationTimestamp")},
            "subsets": subsets}


def matches(labels: dict[str, Any], selector: dict[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def parse_selector(text: str | None) -> dict[str, str]:
    out = {}
    for part in (text or "").split(","):
        if part.strip():
            key, _, value = part.partition("=")
            out[key.strip()] = value.strip().lstrip("=")
    return out


# -- the server ----------------------------------------------------------------------------

SYSTEM = [  # (kind, name, component that --disable removes)
    ("Deployment", "coredns", "coredns"),
    ("Deployment", "local-path-provisioner", "local-storage"),
    ("Deployment", "metrics-server", "metrics-server"),
    ("Deployment", "traefik", "traefik"),
    ("DaemonSet", "svclb-traefik", "servicelb"),
]


def ensure_certificates(tls: Path, names: list[str]) -> None:
    """A self-signed CA + serving certificate, made once with openssl (k3s's is its own)."""
    import subprocess

    cert, key = tls / "serving-kube-apiserver.crt", tls / "serving-kube-apiserver.key"
    if cert.exists() and key.exists():
        return
    tls.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"IP:{n}" if re.fullmatch(r"[0-9.]+", n) else f"DNS:{n}" for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                    "-subj", f"/CN=k3s-server-ca@{int(time.time())}", "-addext",
                    f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    (tls / "server-ca.crt").write_bytes(cert.read_bytes())


def write_kubeconfig(config: dict[str, Any], ca_pem: bytes, password: str) -> Path:
    path = Path(config.get("write-kubeconfig") or ETC_DIR / "k3s/k3s.yaml")
    ca = base64.b64encode(ca_pem).decode()
    admin = base64.b64encode(f"admin:{password}".encode()).decode()
    port = config.get("https-listen-port", 6443)
    text = (f"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
            f"    server: https://127.0.0.1:{port}\n  name: default\ncontexts:\n- context:\n"
            "    cluster: default\n    user: default\n  name: default\n"
            "current-context: default\nkind: Config\npreferences: {}\nusers:\n"
            f"- name: default\n  user:\n    client-certificate-data: {admin}\n"
            f"    client-key-data: {admin}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.chmod(tmp, int(str(config.get("write-kubeconfig-mode", "600")), 8))
    tmp.replace(path)
    return path


def register_node(store: Store, name: str, ip: str, roles: list[str], arch: str,
                  up: bool = True, version: str | None = None) -> None:
    with store.locked() as data:
        key = key_of("Node", None, name)
        node = data["objects"].get(key) or {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": now_iso(), "uid": token_hex(8)}}
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/arch": arch,
                  "kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
                  **{f"node-role.kubernetes.io/{r}": "true" for r in roles}}
        node["metadata"]["labels"] = {**node["metadata"].get("labels", {}), **labels}
        node["status"] = {"x-double-up": up, "x-double-heartbeat": time.time() if up else 0,
                          "addresses": [{"type": "InternalIP", "address": ip},
                                        {"type": "Hostname", "address": name}],
                          "nodeInfo": {"kubeletVersion": version or VERSION,
                                       "kubeProxyVersion": version or VERSION,
                                       "architecture": arch, "operatingSystem": "linux",
                                       "containerRuntimeVersion": "containerd://2.0.5-k3s1"}}
        data["objects"][key] = node


def machine_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(os.uname().machine,
                                                                        os.uname().machine)


def api_handler() -> type[http.server.BaseHTTPRequestHandler]:
    """The request handler class (http.server is imported only when a server runs)."""
    import http.server

    class ApiHandler(http.server.BaseHTTPRequestHandler):
        """The part of the supervisor/API port an agent talks to when it joins."""

        password = ""
        ca_pem = b""
        store: Store

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _send(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                try:
                    _, _, given = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return False
                import hmac

                return hmac.compare_digest(given, self.password)
            return False

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/cacerts":
                return self._send(200, self.ca_pem)
            if self.path == "/ping":
                return self._send(200, b"pong")
            if not self._authorised():
                return self._send(401, b"Unauthorized\n")
            return self._send(404, b"not found\n")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length)
            if not self._authorised():
                log("error", f"Unauthorized join attempt from {self.client_address[0]}: "
                             "the node presented a wrong token")
                return self._send(401, b"Unauthorized\n")
            if self.path != "/v1-k3s/node":
                return self._send(404, b"not found\n")
            info = json.loads(body or b"{}")
            register_node(self.store, info["name"], info["ip"], info.get("roles", []),
                          info.get("arch", "amd64"), up=info.get("up", True),
                          version=info.get("version", VERSION))
            return self._send(200, b'{"ok": true}', "application/json")

    return ApiHandler


def serve_api(config: dict[str, Any], password: str, ca_pem: bytes, tls: Path,
              store: Store) -> http.server.ThreadingHTTPServer:
    import http.server
    import ssl
    import threading

    handler = type("Handler", (api_handler(),), {"password": password, "ca_pem": ca_pem,
                                                  "store": store})
    address = str(config.get("bind-address") or "0.0.0.0")
    server = http.server.ThreadingHTTPServer((address, int(config.get("https-listen-port",
                                                                      6443))), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls / "serving-kube-apiserver.crt"),
                            str(tls / "serving-kube-apiserver.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ensure_system(store: Store, disabled: list[str]) -> None:
    with store.locked() as data:
        objs = data["objects"]
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            objs.setdefault(key_of("Namespace", None, ns), {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "creationTimestamp": now_iso()}})
        for kind, name, component in SYSTEM:
            key = key_of(kind, "kube-system", name)
            if component in disabled:
                objs.pop(key, None)
                continue
            objs.setdefault(key, {
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": name, "namespace": "kube-system",
                             "creationTimestamp": now_iso(), "generation": 1,
                             "annotations": {"double.greenroom/ready-seconds": "2"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}}}})


# -- kube-vip's effect (the lab runs no pods) -------------------------------------------------

KUBE_VIP = DATA_DIR / "agent/pod-manifests/kube-vip.yaml"
_ENV_ITEM = re.compile(r"\{\s*name:\s*([A-Za-z_]+),\s*value:\s*\"?([^\"}]*)\"?\s*\}")


def kube_vip_settings(text: str) -> tuple[str, str] | None:
    """(VIP, interface) from kube-vip's static pod manifest, None without both."""
    env = {m.group(1): m.group(2).strip() for m in _ENV_ITEM.finditer(text)}
    vip, interface = env.get("address"), env.get("vip_interface")
    return (vip, interface) if vip and interface else None


def hold_vip(up: bool) -> None:
    """What kube-vip's static pod does on the leader (the cluster's first server here, while
    it runs): the control-plane VIP on its VLAN interface, in the guest's own network
    namespace; dropped when it stops. Never under K3S_DOUBLE_ROOT (a test on this machine)."""
    import subprocess

    if os.environ.get("K3S_DOUBLE_ROOT") or not KUBE_VIP.exists():
        return
    found = kube_vip_settings(KUBE_VIP.read_text())
    if found is None:
        return
    vip, interface = found
    done = subprocess.run(["ip", "addr", "replace" if up else "del", f"{vip}/32", "dev",
                           interface], capture_output=True, text=True, check=False)
    log("info" if done.returncode == 0 else "error",
        f"kube-vip (double): {vip} {'held on' if up else 'released from'} {interface}"
        + ("" if done.returncode == 0 else f": {done.stderr.strip()}"))


def run_server(config: dict[str, Any]) -> int:
    import signal
    import threading

    server_dir = DATA_DIR / "server"
    tls = server_dir / "tls"
    name, ip = node_name(config), node_ip(config)
    log("info", f"Starting k3s {VERSION} ({COMMIT}) [{DOUBLE}]")
    join = config.get("server")
    if join:
        return run_agent(config, roles=["control-plane", "master", "etcd"])
    sans = ["127.0.0.1", "localhost", ip, name, *[str(s) for s in config.get("tls-san", [])]]
    ensure_certificates(tls, sans)
    ca_pem = (tls / "server-ca.crt").read_bytes()
    ca_hash = sha256_hex(ca_pem)
    token_file = server_dir / "token"
    given = str(config.get("token") or "")
    if token_file.exists():
        _, password = split_token(token_file.read_text().strip())
        if given and split_token(given)[1] != password:
            log("fatal", "bootstrap data already found and encrypted with different token")
            return 1
    else:
        password = split_token(given)[1] if given else token_hex(16)
    token = f"K10{ca_hash}::server:{password}"
    server_dir.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o077)
    try:
        token_file.write_text(token + "\n")
        node_token = server_dir / "node-token"
        if not node_token.is_symlink():
            node_token.unlink(missing_ok=True)
            node_token.symlink_to(token_file)
        (server_dir / "agent-token").write_text(token + "\n")
    finally:
        os.umask(old)
    store = Store()
    store.create()
    disabled = [str(d) for d in config.get("disable", [])]
    ensure_system(store, disabled)
    for written in render_registries(config):
        log("info", f"Using private registry config file at {ETC_DIR}/k3s/registries.yaml "
                    f"for {written}")
    import_images()
    api = serve_api(config, password, ca_pem, tls, store)
    hold_vip(True)
    roles = ["control-plane", "master"] + (["etcd"] if config.get("cluster-init") else [])
    register_node(store, name, ip, roles, machine_arch())
    kubeconfig = write_kubeconfig(config, ca_pem, password)
    log("info", f"Wrote kubeconfig {kubeconfig}")
    log("info", f"Node token is available at {server_dir}/token")
    log("info", f"k3s is up and running; node {name} ({ip}) registered; "
                f"disabled: {','.join(disabled) or 'none'}")
    sd_notify("READY=1")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(HEARTBEAT):
        register_node(store, name, ip, roles, machine_arch())
    register_node(store, name, ip, roles, machine_arch(), up=False)
    hold_vip(False)
    api.shutdown()
    log("info", "Shutting down k3s server")
    return 0


# -- the agent ------------------------------------------------------------------------------

class JoinError(Exception):
    pass


def fetch_cacerts(url: str) -> bytes:
    import ssl
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # like k3s: trust comes from the hash in the token
    with urllib.request.urlopen(f"{url}/cacerts", timeout=10, context=context) as resp:
        return bytes(resp.read())


def post_node(url: str, ca_pem: bytes, password: str, info: dict[str, Any]) -> None:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = False
    request = urllib.request.Request(
        f"{url}/v1-k3s/node", data=json.dumps(info).encode(), method="POST",
        headers={"Authorization": "Basic " + base64.b64encode(
            f"node:{password}".encode()).decode(), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context):
            return
    except urllib.error.HTTPError as exc:
        raise JoinError(f"{url}/v1-k3s/node: {exc.code} {exc.reason}") from None


def run_agent(config: dict[str, Any], roles: list[str] | None = None) -> int:
    import signal
    import ssl
    import threading

    url = str(config.get("server") or "").rstrip("/")
    token = str(config.get("token") or "")
    if not url:
        log("fatal", "--server is required (K3S_URL)")
        return 1
    if not token:
        log("fatal", "--token is required (K3S_TOKEN)")
        return 1
    ca_hash, password = split_token(token)
    name, ip = node_name(config), node_ip(config)
    for written in render_registries(config):
        log("info", f"Using private registry config file for {written}")
    import_images()
    password_file = ETC_DIR / "node/password"
    if not password_file.exists():
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(token_hex(16) + "\n")
        os.chmod(password_file, 0o600)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    info = {"name": name, "ip": ip, "roles": roles or [], "arch": machine_arch(),
            "version": VERSION}
    joined = False
    ca_pem = b""
    while not stop.is_set():
        try:
            if not joined:
                ca_pem = fetch_cacerts(url)
                if ca_hash and sha256_hex(ca_pem) != ca_hash:
                    raise JoinError("token CA hash does not match the Cluster CA certificate "
                                    "hash")
            post_node(url, ca_pem, password, info)
            if not joined:
                joined = True
                log("info", f"Node {name} joined the cluster at {url}")
                sd_notify("READY=1")
        except JoinError as exc:
            log("error", f"Failed to validate connection to cluster at {url}: {exc}")
        except (OSError, ssl.SSLError) as exc:
            log("info", f"Waiting to retrieve agent configuration; server is not ready: {exc}")
        stop.wait(HEARTBEAT if joined else JOIN_RETRY)
    if joined:
        with contextlib.suppress(Exception):
            post_node(url, ca_pem, password, {**info, "up": False})
    log("info", "Shutting down k3s agent")
    return 0


# -- kubectl --------------------------------------------------------------------------------

class KubectlError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def kubectl(args: list[str]) -> int:
    try:
        return _kubectl(args)
    except KubectlError as exc:
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        return exc.code


def _options(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    positional: list[str] = []
    opts: dict[str, Any] = {"for": []}
    takes = {"-n": "namespace", "--namespace": "namespace", "-o": "output",
             "--output": "output", "-f": "filename", "--filename": "filename",
             "-l": "selector", "--selector": "selector", "--timeout": "timeout",
             "--for": "for", "--kubeconfig": "kubeconfig", "--field-manager": "fm",
             "--server-side": None, "--force-conflicts": None, "-A": None,
             "--all-namespaces": None, "--all": None, "--ignore-not-found": None,
             "--no-headers": None, "--client": None, "--wait": None, "--now": None}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in takes:
            target = takes[name]
            if target is None:
                opts[name.lstrip("-")] = value.lower() != "false" if eq else True
            else:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise KubectlError(f"error: flag needs an argument: {name}")
                    value = args[i]
                if target == "for":
                    opts["for"].append(value)
                else:
                    opts[target] = value
        elif arg.startswith("-n") and len(arg) > 2:
            opts["namespace"] = arg[2:]
        elif arg.startswith("-o") and len(arg) > 2:
            opts["output"] = arg[2:]
        elif arg.startswith("-"):
            raise KubectlError(f"error: unknown flag: {arg}")
        else:
            positional.append(arg)
        i += 1
    return positional, opts


def _store() -> Store:
    store = Store()
    if not store.path.exists():
        raise KubectlError("The connection to the server 127.0.0.1:6443 was refused - did you "
                           "specify the right host or port?")
    return store


def _kubectl(args: list[str]) -> int:
    if not args:
        raise KubectlError("kubectl controls the Kubernetes cluster manager (k3s double).")
    verb, rest = args[0], args[1:]
    positional, opts = _options(rest)
    if verb == "version":
        client = {"gitVersion": VERSION, "platform": f"linux/{machine_arch()}"}
        out: dict[str, Any] = {"clientVersion": client}
        if not opts.get("client"):
            _store()
            out["serverVersion"] = client
        if opts.get("output") == "json":
            print(json.dumps(out, indent=2))
        else:
            print(f"Client Version: {VERSION}")
            if "serverVersion" in out:
                print(f"Server Version: {VERSION}")
        return 0
    store = _store()
    if verb == "get":
        return kubectl_get(store, positional, opts)
    if verb == "apply":
        return kubectl_apply(store, opts)
    if verb == "delete":
        return kubectl_delete(store, positional, opts)
    if verb == "wait":
        return kubectl_wait(store, positional, opts)
    raise KubectlError(f'error: unknown command "{verb}" for "kubectl" (k3s double: get, '
                       "apply, delete, wait, version)")


def _api_version(data: dict[str, Any], kind: str) -> str:
    group = kinds(data)[kind][0]
    versions = {"": "v1", "apiextensions.k8s.io": "apiextensions.k8s.io/v1",
                "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1"}
    for crd in data.get("crds", {}).values():
        if crd["kind"] == kind:
            return f"{crd['group']}/{crd['version']}"
    return versions.get(group, f"{group}/v1")


def select(data: dict[str, Any], kind: str, names: list[str], opts: dict[str, Any],
           ) -> list[dict[str, Any]]:
    namespaced = kinds(data)[kind][2]
    namespace = None if opts.get("A") or opts.get("all-namespaces") or not namespaced \
        else opts.get("namespace", "default")
    if kind == "Pod":
        candidates = pods(data)
    elif kind == "Endpoints":
        candidates = [e for s in objects_of(data, "Service") if (e := endpoints(
            data, s["metadata"].get("namespace", "default"), s["metadata"]["name"]))]
    else:
        candidates = [with_status(data, o) for o in objects_of(data, kind)]
    selector = parse_selector(opts.get("selector"))
    found = []
    for obj in candidates:
        meta = obj["metadata"]
        if namespace is not None and meta.get("namespace", "default") != namespace:
            continue
        if names and meta["name"] not in names:
            continue
        if selector and not matches(meta.get("labels", {}), selector):
            continue
        found.append(obj)
    return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""),
                                        o["metadata"]["name"]))


def _targets(data: dict[str, Any], positional: list[str]) -> list[tuple[str, list[str]]]:
    """`pods`, `pods a b`, `deploy/a`, `nodes,pods` -> [(kind, names)]."""
    if not positional:
        raise KubectlError("error: you must specify the type of resource to get")
    out: list[tuple[str, list[str]]] = []
    if "/" in positional[0]:
        for item in positional:
            word, _, name = item.partition("/")
            out.append((_kind(data, word), [name]))
        return out
    for word in positional[0].split(","):
        out.append((_kind(data, word), positional[1:]))
    return out


def _kind(data: dict[str, Any], word: str) -> str:
    kind = resolve_kind(data, word)
    if kind is None:
        raise KubectlError(f'error: the server doesn\'t have a resource type "{word}"')
    return kind


def kubectl_get(store: Store, positional: list[str], opts: dict[str, Any]) -> int:
    with store.locked(write=False) as data:
        targets = _targets(data, positional)
        items: list[dict[str, Any]] = []
        missing = []
        for kind, names in targets:
            found = select(data, kind, names, opts)
            for obj in found:
                obj.setdefault("apiVersion", _api_version(data, kind))
            items += found
            for name in names:
                if not any(o["metadata"]["name"] == name for o in found):
                    missing.append((kinds(data)[kind], name))
    output = opts.get("output", "")
    single = len(targets) == 1 and len(targets[0][1]) == 1
    if missing and not opts.get("ignore-not-found"):
        (group, plural, _), name = missing[0]
        what = f"{plural}.{group}" if group else plural
        raise KubectlError(f'Error from server (NotFound): {what} "{name}" not found')
    if output == "json":
        body = items[0] if single and items else {"apiVersion": "v1", "kind": "List",
                                                   "items": items, "metadata": {}}
        print(json.dumps(body, indent=4))
    elif output == "name":
        for obj in items:
            group = BUILTIN_KINDS.get(obj["kind"], ("",))[0]
            print(f"{obj['kind'].lower()}{'.' + group if group else ''}/"
                  f"{obj['metadata']['name']}")
    elif output.startswith("jsonpath="):
        body = items[0] if single and items else {"items": items}
        print(jsonpath(body, output[len("jsonpath="):]), end="")
    elif output in ("", "wide"):
        print_table(items, opts)
    else:
        raise KubectlError(f"error: unable to match a printer suitable for the output format "
                           f'"{output}" (k3s double: json, name, jsonpath=, wide)')
    if not items and output in ("", "wide"):
        sys.stderr.write("No resources found\n")
    return 0


def jsonpath(body: Any, expression: str) -> str:
    """{.a.b}, {.items[*].metadata.name} and {.a[0].b}; lists print space-separated."""
    results = []
    for template in re.findall(r"\{([^}]*)\}", expression) or [expression]:
        values = [body]
        for part in re.findall(r"\.([^.\[]+)|\[(\*|\d+)\]", template.strip()):
            name, index = part
            nxt = []
            for value in values:
                if name and isinstance(value, dict) and name in value:
                    nxt.append(value[name])
                elif index == "*" and isinstance(value, list):
                    nxt.extend(value)
                elif index and index != "*" and isinstance(value, list) and \
                        int(index) < len(value):
                    nxt.append(value[int(index)])
            values = nxt
        results.append(" ".join(v if isinstance(v, str) else json.dumps(v) for v in values))
    return "".join(results)


def print_table(items: list[dict[str, Any]], opts: dict[str, Any]) -> None:
    rows = []
    all_ns = opts.get("A") or opts.get("all-namespaces")
    for obj in items:
        meta, status = obj["metadata"], obj.get("status", {})
        age = human_age(age_of(obj))
        kind = obj["kind"]
        if kind == "Node":
            ready = status["conditions"][0]["status"] == "True"
            roles = ",".join(sorted(k.split("/", 1)[1] for k in meta.get("labels", {})
                                    if k.startswith("node-role.kubernetes.io/"))) or "<none>"
            head = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
            row = [meta["name"], "Ready" if ready else "NotReady", roles, age,
                   status.get("nodeInfo", {}).get("kubeletVersion", "")]
        elif kind == "Pod":
            ready = status["phase"] == "Running"
            head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
            row = [meta["name"], "1/1" if ready else "0/1", status["phase"], "0", age]
        elif kind in ("Deployment", "StatefulSet"):
            head = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
            row = [meta["name"], f"{status['readyReplicas']}/{status['replicas']}",
                   str(status["replicas"]), str(status["availableReplicas"]), age]
        else:
            head, row = ["NAME", "AGE"], [meta["name"], age]
        if all_ns and "namespace" in meta:
            head, row = ["NAMESPACE", *head], [meta["namespace"], *row]
        rows.append((head, row))
    if not rows:
        return
    head = rows[0][0]
    table = ([] if opts.get("no-headers") else [head]) + [r for _, r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for row in table:
        print("   ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


def _read_manifests(opts: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    source = opts.get("filename")
    if not source:
        raise KubectlError("error: must specify one of -f and -k")
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    where = "STDIN" if source == "-" else source
    try:
        docs = load_documents(text)
    except ValueError as exc:
        raise KubectlError(f'error: error parsing {where}: {exc}') from None
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            objects += doc.get("items", [])
        elif isinstance(doc, dict):
            objects.append(doc)
    return where, objects


def _group_version(obj: dict[str, Any]) -> tuple[str, str]:
    api = str(obj.get("apiVersion", ""))
    group, _, version = api.rpartition("/")
    return group, version


REFUSE_FIRST = "double.greenroom/refuse-first"


def admission(data: dict[str, Any], obj: dict[str, Any], where: str,
              counted: set[str] | None = None) -> str | None:
    """A validating webhook whose service has no ready endpoint refuses the object. With the
    annotation `double.greenroom/refuse-first: "N"` on its configuration, it also refuses the
    first N kubectl calls after the endpoints appeared (the webhook server still loading its
    certificate: metallb#1597); `counted` holds the configurations this call already counted."""
    group, version = _group_version(obj)
    for hook_config in objects_of(data, "ValidatingWebhookConfiguration"):
        for hook in hook_config.get("webhooks", []):
            rules = hook.get("rules", [])
            if not any(group in r.get("apiGroups", []) or "*" in r.get("apiGroups", [])
                       for r in rules):
                continue
            service = hook.get("clientConfig", {}).get("service") or {}
            ns, name = service.get("namespace", "default"), service.get("name", "")
            ep = endpoints(data, ns, name)
            config_name = hook_config["metadata"]["name"]
            if ep and ep["subsets"]:
                limit = int(hook_config["metadata"].get("annotations", {}).get(REFUSE_FIRST, 0))
                refusals = data.setdefault("x-double-webhook-refusals", {})
                if counted is not None and config_name in counted:
                    pass  # this call was refused already: refuse its other objects too
                elif refusals.get(config_name, 0) >= limit:
                    continue
                elif counted is not None:
                    counted.add(config_name)
                    refusals[config_name] = refusals.get(config_name, 0) + 1
            verb = "creating" if key_of(obj["kind"], _namespace(data, obj), obj[
                "metadata"]["name"]) not in data["objects"] else "applying patch"
            path = service.get("path", "/validate")
            return (f'Error from server (InternalError): error when {verb} "{where}": Internal '
                    f'error occurred: failed calling webhook "{hook.get("name")}": failed to '
                    f'call webhook: Post "https://{name}.{ns}.svc:443{path}?timeout=10s": '
                    "dial tcp 10.43.0.10:443: connect: connection refused")
    return None


def _namespace(data: dict[str, Any], obj: dict[str, Any], default: str = "default",
               ) -> str | None:
    if not kinds(data).get(obj["kind"], ("", "", True))[2]:
        return None
    return str(obj.get("metadata", {}).get("namespace") or default)


def kubectl_apply(store: Store, opts: dict[str, Any]) -> int:
    where, objects = _read_manifests(opts)
    status = 0
    counted: set[str] = set()
    with store.locked() as data:
        for obj in objects:
            kind = obj.get("kind")
            name = obj.get("metadata", {}).get("name")
            group, version = _group_version(obj)
            if not kind or not name:
                sys.stderr.write(f'error: error validating "{where}": object has no kind or '
                                 "metadata.name\n")
                status = 1
                continue
            known = kinds(data)
            crd_versions = {c["version"] for c in data["crds"].values() if c["kind"] == kind}
            if kind not in known or (kind not in BUILTIN_KINDS and version not in crd_versions):
                sys.stderr.write(
                    f'error: resource mapping not found for name: "{name}" namespace: '
                    f'"{obj["metadata"].get("namespace", "")}" from "{where}": no matches for '
                    f'kind "{kind}" in version "{obj.get("apiVersion")}"\nensure CRDs are '
                    "installed first\n")
                status = 1
                continue
            namespace = _namespace(data, obj, opts.get("namespace", "default"))
            if namespace and key_of("Namespace", None, namespace) not in data["objects"]:
                sys.stderr.write(f'Error from server (NotFound): error when creating "{where}":'
                                 f' namespaces "{namespace}" not found\n')
                status = 1
                continue
            refused = admission(data, obj, where, counted)
            if refused:
                sys.stderr.write(refused + "\n")
                status = 1
                continue
            key = key_of(kind, namespace, name)
            old = data["objects"].get(key)
            new = json.loads(json.dumps(obj))
            new.pop("status", None)
            meta = new.setdefault("metadata", {})
            if namespace:
                meta["namespace"] = namespace
            if old is None:
                meta["creationTimestamp"] = now_iso()
                meta["uid"] = token_hex(8)
                meta["generation"] = 1
                word = "created"
            else:
                kept = {k: old["metadata"][k] for k in ("creationTimestamp", "uid",
                                                        "generation")
                        if k in old["metadata"]}
                before = {k: v for k, v in old.items() if k != "status"}
                before_meta = {k: v for k, v in before["metadata"].items() if k not in kept}
                same = ({**before, "metadata": before_meta} == new)
                meta.update(kept)
                if not same:
                    meta["generation"] = int(kept.get("generation", 1)) + 1
                    if kind in ("Deployment", "DaemonSet", "StatefulSet"):
                        meta["creationTimestamp"] = now_iso()  # a rollout starts again
                word = "unchanged" if same else "configured"
            data["objects"][key] = new
            if kind == "CustomResourceDefinition":
                spec = new.get("spec", {})
                served = [v["name"] for v in spec.get("versions", []) if v.get("served", True)]
                for served_version in served or [spec.get("version", "v1")]:
                    data["crds"][f"{name}/{served_version}"] = {
                        "kind": spec.get("names", {}).get("kind"), "group": spec.get("group"),
                        "plural": spec.get("names", {}).get("plural"),
                        "version": served_version,
                        "namespaced": spec.get("scope", "Namespaced") == "Namespaced",
                        "crd": name}
            group_part = f".{group}" if group else ""
            print(f"{kind.lower()}{group_part}/{name} {word}")
    return status


def _delete_one(data: dict[str, Any], kind: str, namespace: str | None, name: str) -> bool:
    key = key_of(kind, namespace, name)
    if key not in data["objects"]:
        return False
    del data["objects"][key]
    if kind == "Namespace":
        for other in [k for k in data["objects"] if k.split("/")[1] == name]:
            del data["objects"][other]
    if kind == "CustomResourceDefinition":
        gone = {c["kind"] for k, c in data["crds"].items() if c["crd"] == name}
        data["crds"] = {k: c for k, c in data["crds"].items() if c["crd"] != name}
        for other in [k for k in data["objects"] if k.split("/")[0] in gone]:
            del data["objects"][other]
    return True


def kubectl_delete(store: Store, positional: list[str], opts: dict[str, Any]) -> int:
    status = 0
    with store.locked() as data:
        if opts.get("filename"):
            where, objects = _read_manifests(opts)
            wanted = [(o["kind"], _namespace(data, o, opts.get("namespace", "default"))
                       if o["kind"] in kinds(data) else None, o["metadata"]["name"])
                      for o in objects]
        else:
            wanted = []
            for kind, names in _targets(data, positional):
                ns = opts.get("namespace", "default") if kinds(data)[kind][2] else None
                if opts.get("all") or opts.get("selector"):
                    names = [o["metadata"]["name"] for o in select(data, kind, [], opts)]
                wanted += [(kind, ns, n) for n in names]
        for kind, ns, name in wanted:
            group, plural, _ = kinds(data).get(kind, ("", kind.lower() + "s", True))
            label = f"{kind.lower()}{'.' + group if group else ''}"
            if _delete_one(data, kind, ns, name):
                print(f'{label} "{name}" deleted')
            elif not opts.get("ignore-not-found"):
                what = f"{plural}.{group}" if group else plural
                sys.stderr.write(f'Error from server (NotFound): {what} "{name}" not found\n')
                status = 1
    return status


def parse_timeout(text: str | None) -> float:
    if not text:
        return 30.0
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not match:
        raise KubectlError(f'error: invalid argument "{text}" for "--timeout" flag')
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def kubectl_wait(store: Store, positional: list[str], opts: dict[str, Any]) -> int:
    conditions = opts.get("for") or []
    if len(conditions) != 1:
        raise KubectlError("error: --for must be given once: condition=NAME[=VALUE], delete "
                           "or jsonpath=...")
    condition = conditions[0]
    deadline = time.monotonic() + parse_timeout(opts.get("timeout"))
    with store.locked(write=False) as data:
        targets = _targets(data, positional)
    while True:
        with store.locked(write=False) as data:
            pending, met = [], []
            for kind, names in targets:
                if not names and not (opts.get("all") or opts.get("selector")):
                    raise KubectlError("error: resource(s) were provided, but no name was "
                                       "specified")
                found = select(data, kind, names, opts)
                plural = kinds(data)[kind][1]
                group = kinds(data)[kind][0]
                label = f"{kind.lower()}{'.' + group if group else ''}"
                if condition == "delete":
                    pending += [f"{plural}/{o['metadata']['name']}" for o in found]
                    continue
                if names and len(found) < len(names) or not found:
                    missing = [n for n in names if all(
                        o["metadata"]["name"] != n for o in found)] or ["(none matched)"]
                    pending += [f"{plural}/{n}" for n in missing]
                for obj in found:
                    if _condition_met(obj, condition):
                        met.append(f"{label}/{obj['metadata']['name']} condition met")
                    else:
                        pending.append(f"{plural}/{obj['metadata']['name']}")
        if not pending:
            for line in met:
                print(line)
            return 0
        if time.monotonic() >= deadline:
            raise KubectlError(f"error: timed out waiting for the condition on {pending[0]}")
        time.sleep(0.5)


def _condition_met(obj: dict[str, Any], condition: str) -> bool:
    if condition.startswith("condition="):
        name, _, value = condition[len("condition="):].partition("=")
        value = value or "True"
        return any(c.get("type", "").lower() == name.lower() and c.get("status") == value
                   for c in obj.get("status", {}).get("conditions", []))
    if condition.startswith("jsonpath="):
        expression, _, value = condition[len("jsonpath="):].rpartition("=")
        return jsonpath(obj, expression) == value
    raise KubectlError(f"error: unrecognized condition: {condition!r}")


# -- entry point ----------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    program = os.path.basename(argv[0])
    args = argv[1:]
    if program == "kubectl":
        return kubectl(args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(f"k3s {VERSION} ({DOUBLE}): server, agent, kubectl, --version")
        return 0
    if args[0] in ("--version", "-v", "version"):
        print(f"k3s version {VERSION} ({COMMIT})\ngo version go1.24.4 ({DOUBLE})")
        return 0
    if args[0] == "kubectl":
        return kubectl(args[1:])
    if args[0] in ("server", "agent"):
        config = load_config(parse_flags(args[1:]))
        if args[0] == "server":
            return run_server(config)
        return run_agent(config)
    sys.stderr.write(f"k3s: unknown command {args[0]!r} (double: server, agent, kubectl, "
                     "--version)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
