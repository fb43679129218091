#!/usr/bin/env python3
"""greenroom lab DOUBLE of the `snap` command (for the microk8s snap only) and of `microk8s`.

snapd cannot run in the lab's guests and the snap store is not reachable, so this stands in
for both (never installed on a real site). It keeps its state where the real ones do:
the launch configuration is read from /var/snap/microk8s/common/.microk8s.yaml, the cluster
under /var/snap/microk8s/current/. Every call is appended to CALLS (argv, the join token
replaced by <token>, and what the launch configuration was at install time).

snap: `list microk8s` (Notes `classic` or `classic,held`), `install microk8s --classic
--channel=C` or `install ./microk8s_R.snap --classic` (only after `ack` of an assertion
stating that file's SHA3-384, as snapd finds it by digest),
`refresh --hold|--unhold microk8s`, `set microk8s config=<launch config>`, `remove [--purge]
microk8s`. Installing creates group `microk8s`, /usr/local/bin/microk8s (where /snap/bin
would be), enables the launch configuration's addons and starts the cluster agent
(unit snap.microk8s.daemon-cluster-agent, plain HTTP on :25000 in the double).

microk8s: `status [--wait-ready] [--timeout N] [--format short]` (ready READY_SECONDS after
the install), `add-node [--token-ttl N] [--format json]` (tokens kept as the real one keeps
them, in credentials/cluster-tokens.txt: without a TTL single-use, with one reusable until it
expires; the JSON's token is TOKEN/CHECK, CHECK standing for the seed's certificate hash),
`join ADDR:25000/TOKEN/CHECK [--worker]` (refused: a wrong, used or expired token, a wrong
CHECK, a node the seed already knows; after the seed accepted it the process stays
JOIN_SECONDS, as the real join does while it configures the node), `leave`,
`remove-node NAME [--force]`, `enable NAME [ARGS]`, `config`
(kubeconfig: cluster microk8s-cluster, user admin, context microk8s), `inspect`,
`status -a ADDON` (enabled / disabled), `disable NAME`.

`microk8s kubectl` is the k3s double's kubectl (get, apply, delete, wait, version on its
object store, with its models of workloads becoming Available, Endpoints, webhooks and
MetalLB's controller), loaded from KUBE (install() puts the k3s double there) with its
store under CURRENT: the code is shared, not copied. Before each call the seed's nodes
(all Ready, roles `<none>` as microk8s shows them) and namespaces (default, kube-system,
kube-public, kube-node-lease, and `ingress` once the ingress addon is enabled, as the addon
creates it) are written into the store. On a node that joined another, kubectl is refused.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

LIB = "/usr/local/lib/greenroom-double/microk8s.py"
KUBE = "/usr/local/lib/greenroom-double/k3s.py"  # the k3s double: its kubectl and store
BIN = "/usr/local/bin/microk8s"
CALLS = "/var/log/greenroom-double-microk8s.calls"
SNAP_STATE = "/var/lib/snapd/greenroom-double-microk8s.json"
ACKED = "/var/lib/snapd/greenroom-double-acked"
LAUNCH = "/var/snap/microk8s/common/.microk8s.yaml"
CURRENT = "/var/snap/microk8s/current"
STATE = f"{CURRENT}/var/greenroom-double/cluster.json"
OBJECTS = f"{CURRENT}/var/greenroom-double/kube"  # the store: OBJECTS/server/db/state.json
CLUSTERED = f"{CURRENT}/var/lock/clustered.lock"
AGENT_UNIT = "snap.microk8s.daemon-cluster-agent"
TOKENS = f"{CURRENT}/credentials/cluster-tokens.txt"
READY_SECONDS = float(os.environ.get("MICROK8S_DOUBLE_READY_SECONDS", "2"))
JOIN_SECONDS = float(os.environ.get("MICROK8S_DOUBLE_JOIN_SECONDS", "1.5"))
VERSION, REVISION = "v1.32.3", "7964"


def log(argv: list[str], extra: str = "") -> None:
    shown = [re.sub(r"(:\d+/)[^ ]+", r"\1<token>", a) for a in argv]
    if argv[:1] == ["add-node"] and "--token" in argv:
        shown = [*shown[:shown.index("--token") + 1], "<token>"]
    os.makedirs(os.path.dirname(CALLS), exist_ok=True)
    with open(CALLS, "a") as out:
        out.write(f"{time.time():.3f} {' '.join(shown)}{extra}\n")


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def load(path: str, default: dict) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


class Locked:
    def __enter__(self) -> None:
        os.makedirs(os.path.dirname(STATE), exist_ok=True)
        self.f = open(STATE + ".lock", "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        self.f.close()


def launch_addons(text: str) -> list[list[str]]:
    """[[name, args...]] of a launch configuration (block YAML as greenroom writes it)."""
    if not re.search(r"^version: 0\.1\.0$", text, re.M):
        fail(f"{LAUNCH}: unsupported launch configuration version (want 0.1.0)")
    out: list[list[str]] = []
    section = re.search(r"^addons:\n((?:[- ].*\n)*)", text, re.M)
    for line in (section.group(1) if section else "").splitlines():
        m = re.match(r"- name: (\S+)", line)
        if m:
            out.append([m.group(1)])
        m = re.match(r"\s+- (.+)", line)
        if m and out:
            out[-1].append(m.group(1).strip("'\""))
    return out


def apply_launch(text: str) -> None:
    with Locked():
        state = load(STATE, {})
        for addon in launch_addons(text):
            state.setdefault("addons", {})[addon[0]] = addon[1:]
        state["launch"] = text
        save(STATE, state)


# -- snap ------------------------------------------------------------------------------------

def snap(argv: list[str]) -> None:
    st = load(SNAP_STATE, {})
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "list":
        if not st.get("installed"):
            fail("error: no matching snaps installed")
        notes = "classic,held" if st.get("held") else "classic"
        print("Name      Version  Rev   Tracking     Publisher   Notes")
        print(f"microk8s  {VERSION}  {st.get('revision', REVISION)}  {st['channel']}  "
              f"canonical**  {notes}")
    elif cmd == "ack":
        ack(rest[0])
    elif cmd == "install":
        install(st, rest)
    elif cmd == "refresh" and rest[:1] in (["--hold"], ["--unhold"]) and "microk8s" in rest:
        if not st.get("installed"):
            fail('error: snap "microk8s" is not installed')
        st["held"] = rest[0] == "--hold"
        save(SNAP_STATE, st)
        print('General refreshes of "microk8s" ' + ("held indefinitely" if st["held"]
                                                   else "no longer held"))
    elif cmd == "set" and rest[:1] == ["microk8s"] and rest[1:2] and \
            rest[1].startswith("config="):
        apply_launch(rest[1][len("config="):])
    elif cmd == "remove" and "microk8s" in rest:
        if not st.get("installed"):
            fail('snap "microk8s" is not installed')
        subprocess.run(["systemctl", "stop", AGENT_UNIT], capture_output=True)
        for path in (BIN, SNAP_STATE):
            if os.path.exists(path):
                os.remove(path)
        shutil.rmtree("/var/snap/microk8s" if "--purge" in rest else CURRENT,
                      ignore_errors=True)
        print("microk8s removed" + (" (without saving a snapshot)" if "--purge" in rest
                                    else ""))
    else:
        fail(f"error: the double does not model `snap {' '.join(argv)}`")


def ack(path: str) -> None:
    """Add the snap-revision assertion of `path` (digest -> revision) to what is known."""
    text = open(path).read()
    for block in re.split(r"\n\n(?=type: )", text):
        if re.search(r"^type: snap-revision$", block, re.M):
            facts = dict(re.findall(r"^(snap-revision|snap-sha3-384): (\S+)$", block, re.M))
            if len(facts) == 2:
                known = load(ACKED, {})
                known[facts["snap-sha3-384"]] = facts["snap-revision"]
                save(ACKED, known)
                return
    fail(f'error: cannot assert: cannot decode signature: no snap-revision in "{path}"')


def install(st: dict, rest: list[str]) -> None:
    if st.get("installed"):
        print('snap "microk8s" is already installed, see \'snap help refresh\'')
        return
    if "--classic" not in rest:
        fail('error: This revision of snap "microk8s" was published using classic '
             "confinement and thus may perform arbitrary system changes outside of the "
             "security sandbox that snaps are usually confined to.\n\nIf you understand "
             "and want to proceed repeat the command including --classic.")
    target = [a for a in rest if not a.startswith("--")]
    channel = next((a.split("=", 1)[1] for a in rest if a.startswith("--channel=")),
                   "latest/stable")
    revision = REVISION
    if target and target[0].endswith(".snap"):
        with open(target[0], "rb") as f:
            digest = base64.urlsafe_b64encode(hashlib.sha3_384(f.read()).digest()).decode()
        revision = load(ACKED, {}).get(digest.rstrip("="), "")
        if not revision:
            fail(f'error: cannot find signatures with metadata for snap "{target[0]}"')
        channel = "-"  # a local file is tracked on no channel
    elif target != ["microk8s"]:
        fail(f"error: the double installs only microk8s, not {target}")
    launch = open(LAUNCH).read() if os.path.exists(LAUNCH) else None
    digest = hashlib.sha256(launch.encode()).hexdigest() if launch else "none"
    log(["snap", "install", *rest], f" [launch configuration at install: {digest}]")
    subprocess.run(["groupadd", "-f", "microk8s"], check=True)
    os.makedirs(os.path.dirname(CLUSTERED), exist_ok=True)
    with Locked():
        save(STATE, {"installed_at": time.time(), "addons": {}, "tokens": {},
                     "nodes": {socket.gethostname(): {"worker": False}},
                     "admin_token": secrets.token_hex(16)})
    if launch:
        apply_launch(launch)
    with open(BIN, "w") as f:
        f.write(f"#!/bin/sh\n# greenroom lab DOUBLE\nexec /usr/bin/python3 {LIB} microk8s "
                '"$@"\n')
    os.chmod(BIN, 0o755)
    subprocess.run(["systemctl", "stop", AGENT_UNIT], capture_output=True)
    subprocess.run(["systemctl", "reset-failed", AGENT_UNIT], capture_output=True)
    subprocess.run(["systemd-run", f"--unit={AGENT_UNIT}", "/usr/bin/python3", LIB, "agent"],
                   check=True, capture_output=True)
    save(SNAP_STATE, {"installed": True, "channel": channel, "revision": revision,
                      "held": False})
    print(f"microk8s ({channel}) {VERSION} from Canonical** installed")


# -- microk8s --------------------------------------------------------------------------------

def ready() -> bool:
    st = load(STATE, {})
    return bool(st) and time.time() - st.get("installed_at", 0) >= READY_SECONDS


def my_address() -> str:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return out[-1] if out else "127.0.0.1"


def microk8s(argv: list[str]) -> None:
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "status":
        status(rest)
    elif cmd == "add-node":
        add_node(rest)
    elif cmd == "join":
        join(rest)
    elif cmd == "leave":
        if os.path.exists(CLUSTERED):
            os.remove(CLUSTERED)
        print("Generating new cluster certificates.\nWaiting for node to start.")
    elif cmd == "remove-node":
        with Locked():
            st = load(STATE, {})
            if rest[0] not in st.get("nodes", {}):
                fail(f"Node {rest[0]} does not exist in Kubernetes.")
            del st["nodes"][rest[0]]
            save(STATE, st)
    elif cmd == "enable":
        with Locked():
            st = load(STATE, {})
            name, _, args = rest[0].partition(":")  # `enable metallb:10.0.0.1-10.0.0.9`
            st.setdefault("addons", {})[name] = ([args] if args else []) + rest[1:]
            save(STATE, st)
        print(f"Addon {rest[0]} is enabled")
    elif cmd == "disable":
        with Locked():
            st = load(STATE, {})
            st.setdefault("addons", {}).pop(rest[0].partition(":")[0], None)
            save(STATE, st)
        print(f"Addon {rest[0]} is disabled")
    elif cmd == "config":
        kubeconfig()
    elif cmd == "inspect":
        inspect()
    elif cmd == "kubectl":
        kubectl(rest)
    else:
        fail(f"the double does not model `microk8s {' '.join(argv)}`")


def status(rest: list[str]) -> None:
    addon = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a in ("-a", "--addon")),
                 None)
    if addon is not None:
        print("enabled" if addon in load(STATE, {}).get("addons", {}) else "disabled")
        return
    timeout = float(rest[rest.index("--timeout") + 1]) if "--timeout" in rest else 0
    if "--wait-ready" in rest:
        deadline = time.time() + (timeout or 3600)
        while not ready() and time.time() < deadline:
            time.sleep(0.2)
    if not ready():
        print("microk8s is not running. Use microk8s inspect for a deeper inspection.")
        sys.exit(1)
    st = load(STATE, {})
    print("microk8s is running")
    if os.path.exists(CLUSTERED) and st.get("worker"):
        print("This MicroK8s deployment is acting as a node in a cluster.")
        return
    voters = [n for n, v in st.get("nodes", {}).items() if not v.get("worker")]
    print(f"high-availability: {'yes' if len(voters) >= 3 else 'no'}")
    if "--format" in rest and rest[rest.index("--format") + 1] == "short":
        for name in ("dns", "hostpath-storage", "ingress", "metrics-server", "rbac"):
            print(f"core/{name}: {'enabled' if name in st.get('addons', {}) else 'disabled'}")
        for name in sorted(set(st.get("addons", {})) - {"dns", "hostpath-storage", "ingress",
                                                       "metrics-server", "rbac"}):
            print(f"core/{name}: enabled")


def check_hash() -> str:
    """Stands for the hash of the seed's server certificate (`server_cert_check`)."""
    return hashlib.sha256(b"greenroom double CA for " + socket.gethostname().encode()
                          ).hexdigest()[:12]


def add_node(rest: list[str]) -> None:
    token = rest[rest.index("--token") + 1] if "--token" in rest else secrets.token_hex(16)
    ttl = int(rest[rest.index("--token-ttl") + 1]) if "--token-ttl" in rest else -1
    os.makedirs(os.path.dirname(TOKENS), exist_ok=True)
    with Locked():
        with open(TOKENS, "a") as f:
            f.write(f"{token}|{int(time.time()) + ttl}\n" if ttl != -1 else f"{token}\n")
        os.chmod(TOKENS, 0o600)
        st = load(STATE, {})  # for the tests: which tokens were ever issued (hashed)
        st.setdefault("tokens", {})[hashlib.sha256(token.encode()).hexdigest()] = {
            "ttl": ttl}
        save(STATE, st)
    full = f"{token}/{check_hash()}"
    if "--format" in rest and rest[rest.index("--format") + 1] == "json":
        print(json.dumps({"token": full, "urls": [f"{my_address()}:25000/{full}"]}, indent=2))
    else:
        print(f"From the node you wish to join to this cluster, run the following:\n"
              f"microk8s join {my_address()}:25000/{full}")


def consume_token(token: str) -> str | None:
    """Why `token` is refused, or None after consuming it (the real agent's rules)."""
    try:
        lines = open(TOKENS).read().splitlines()
    except FileNotFoundError:
        return "Invalid token"
    for index, line in enumerate(lines):
        value, _, expiry = line.partition("|")
        if value != token or not token:
            continue
        if not expiry:  # single-use
            del lines[index]
            with open(TOKENS + ".tmp", "w") as f:
                f.write("".join(ln + "\n" for ln in lines))
            os.chmod(TOKENS + ".tmp", 0o600)
            os.replace(TOKENS + ".tmp", TOKENS)
            return None
        return None if expiry.isdigit() and int(expiry) > time.time() else \
            "Invalid token (expired)"
    digest = hashlib.sha256(token.encode()).hexdigest()
    return "Invalid token (already used)" if digest in load(STATE, {}).get("tokens", {}) \
        else "Invalid token"


def join(rest: list[str]) -> None:
    target = rest[0]
    address, _, secret = target.partition("/")
    token, _, check = secret.partition("/")
    if os.path.exists(CLUSTERED):
        fail("The node is already part of a cluster: run `microk8s leave` first.")
    print(f"Contacting cluster at {address.partition(':')[0]}")
    body = json.dumps({"token": token, "check": check, "name": socket.gethostname(),
                       "worker": "--worker" in rest}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(
                f"http://{address}/cluster/api/v1.0/join", data=body), timeout=10) as r:
            r.read()
    except urllib.error.HTTPError as exc:
        fail(f"Connection failed. {exc.read().decode().strip()} ({exc.code})")
    except OSError as exc:
        fail(f"Connection failed. {exc}")
    with Locked():
        st = load(STATE, {})
        st["worker"] = "--worker" in rest
        st["joined"] = address
        save(STATE, st)
    time.sleep(JOIN_SECONDS)  # the real join configures and restarts services here
    open(CLUSTERED, "w").close()
    print("Successfully joined the cluster.")


def kubeconfig() -> None:
    st = load(STATE, {})
    if not ready():
        fail("microk8s is not running")
    ca = base64.b64encode(b"greenroom double CA for " + socket.gethostname().encode())
    print(f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca.decode()}
    server: https://{my_address()}:16443
  name: microk8s-cluster
contexts:
- context:
    cluster: microk8s-cluster
    user: admin
  name: microk8s
current-context: microk8s
kind: Config
preferences: {{}}
users:
- name: admin
  user:
    token: {st.get('admin_token', '')}""")


def inspect() -> None:
    print("Inspecting system\nInspecting Certificates\nInspecting services")
    running = subprocess.run(["systemctl", "is-active", AGENT_UNIT],
                             capture_output=True).returncode == 0
    print(f"  Service {AGENT_UNIT} is running" if running else
          f"  FAIL:  Service {AGENT_UNIT} is not running")
    if not ready():
        print("  FAIL:  Service snap.microk8s.daemon-kubelite is not running")
    print("Building the report tarball")
    report = f"/var/snap/microk8s/{REVISION}/inspection-report-{int(time.time())}.tar.gz"
    os.makedirs(os.path.dirname(report), exist_ok=True)
    subprocess.run(["tar", "czf", report, "-C", "/var/snap/microk8s", "common"],
                   capture_output=True)
    print(f"  Report tarball is at {report}")


def kubectl(rest: list[str]) -> None:
    st = load(STATE, {})
    if st.get("joined") or not ready():
        fail("The connection to the server 127.0.0.1:16443 was refused - did you specify "
             "the right host or port?")
    kube = object_store()
    store = kube.Store()
    store.create()
    nodes = sorted(st.get("nodes", {}))
    for name in nodes:
        kube.register_node(store, name, my_address() if name == socket.gethostname() else "",
                           [], kube.machine_arch(), version=VERSION)
    with store.locked() as data:
        for key in [k for k in data["objects"] if k.startswith("Node/")]:
            if key.rsplit("/", 1)[1] not in nodes:  # `microk8s remove-node` deletes it
                del data["objects"][key]
        for namespace in sorted(namespaces(st)):
            data["objects"].setdefault(kube.key_of("Namespace", None, namespace), {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "creationTimestamp": kube.now_iso()}})
    sys.exit(kube.kubectl(rest))


def object_store():  # type: ignore[no-untyped-def]
    """The k3s double as a module, its store under OBJECTS (one code for both doubles)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("greenroom_k3s_double", KUBE)
    if spec is None or spec.loader is None:
        fail(f"{KUBE} is missing: the lab seeds it with the microk8s double")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    setattr(module, "DATA_DIR", Path(OBJECTS))  # noqa: B010 - the k3s double's global
    return module


def namespaces(st: dict) -> set[str]:
    """The namespaces microk8s starts with, plus `ingress` once the ingress addon is on."""
    return {"default", "kube-system", "kube-public", "kube-node-lease"} | (
        {"ingress"} if "ingress" in st.get("addons", {}) else set())


# -- cluster agent ---------------------------------------------------------------------------

class Agent(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if data.get("check") != check_hash():
            return self.answer(500, "certificate check failed: the node answering is not "
                                    "the one that issued the token")
        with Locked():
            why = consume_token(str(data.get("token", "")))
            if why is not None:
                return self.answer(500, why)
            st = load(STATE, {})
            if data["name"] in st.get("nodes", {}):
                save(STATE, st)
                return self.answer(502, f"The joining node ({data['name']}) is already known "
                                        "to dqlite; remove it with `microk8s remove-node`")
            st["nodes"][data["name"]] = {"worker": bool(data.get("worker"))}
            save(STATE, st)
        self.answer(200, "joined")

    def answer(self, code: int, text: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *_: object) -> None:
        pass


def main() -> None:
    role, argv = sys.argv[1], sys.argv[2:]
    if role == "agent":
        HTTPServer(("0.0.0.0", 25000), Agent).serve_forever()
    if argv[:1] != ["install"]:  # install logs itself, with the launch configuration seen
        log([role, *argv])
    (snap if role == "snap" else microk8s)(argv)


if __name__ == "__main__":
    main()
