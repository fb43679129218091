"""The lab's k3s double and release site, run as processes on loopback (no lab needed).

The double is the one fake in the k3s story, so its edges are tested here: a server that
writes its token and kubeconfig and answers on HTTPS, an agent that joins with the right
token and is refused with a wrong one, kubectl keeping objects as the API would (CRDs first,
a validating webhook that refuses CRs until its service has a ready endpoint), and the
release site's assets and checksums (a tampered asset no longer matches).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.lab import release
from tests.support.waiting import wait_until

DOUBLE = Path(release.DOUBLE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.env = dict(os.environ, K3S_DOUBLE_ROOT=str(root), K3S_DOUBLE_READY_SECONDS="2")
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None,
              log: str = "server.log") -> subprocess.Popen[str]:
        out = open(self.root / log, "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, str(DOUBLE), *args],
                                env={**self.env, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(DOUBLE), "kubectl", *args], env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=60)

    def log(self, name: str) -> str:
        return (self.root / name).read_text()

    @property
    def token(self) -> str:
        return (self.root / "var/lib/rancher/k3s/server/token").read_text().strip()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, free_port())
    c.start("server", "--https-listen-port", str(c.port), "--node-ip", "127.0.0.1",
            "--node-name", "srv", "--disable", "traefik,servicelb")
    assert wait_until(lambda: (tmp_path / "etc/rancher/k3s/k3s.yaml").exists(), 20), \
        c.log("server.log")
    yield c
    for proc in c.procs:
        proc.terminate()
        proc.wait(10)


def test_version_line_is_k3s_s() -> None:
    out = subprocess.run([sys.executable, str(DOUBLE), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("k3s version v1.34.3+k3s1 (")


def test_server_writes_token_kubeconfig_and_serves_cacerts(cluster: Cluster) -> None:
    token = cluster.token
    server = cluster.root / "var/lib/rancher/k3s/server"
    assert (server / "node-token").resolve() == server / "token"
    assert oct((server / "token").stat().st_mode & 0o777) == "0o600"
    kubeconfig = (cluster.root / "etc/rancher/k3s/k3s.yaml").read_text()
    assert f"server: https://127.0.0.1:{cluster.port}" in kubeconfig
    assert "name: default" in kubeconfig
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    url = f"https://127.0.0.1:{cluster.port}/cacerts"
    with urllib.request.urlopen(url, context=context, timeout=5) as resp:
        ca = resp.read()
    assert token.startswith(f"K10{hashlib.sha256(ca).hexdigest()}::server:")


def test_agent_with_the_token_joins_and_a_wrong_token_is_refused(cluster: Cluster) -> None:
    url = f"https://127.0.0.1:{cluster.port}"
    good, _, _ = cluster.token.partition("::")
    cluster.start("agent", "--node-ip", "127.0.0.2", log="good.log",
                  env={"K3S_URL": url, "K3S_TOKEN": cluster.token, "K3S_NODE_NAME": "good"})
    cluster.start("agent", log="bad.log",
                  env={"K3S_URL": url, "K3S_TOKEN": f"{good}::server:badpassword9",
                       "K3S_NODE_NAME": "bad"})
    assert wait_until(lambda: "401 Unauthorized" in cluster.log("bad.log"), 20)
    done = cluster.kubectl("wait", "--for=condition=Ready", "node/good", "--timeout=20s")
    assert done.returncode == 0, done.stderr
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)
    names = {n["metadata"]["name"]: n for n in nodes["items"]}
    assert set(names) == {"srv", "good"}
    assert "badpassword9" not in cluster.log("server.log") + cluster.log("bad.log")
    roles = names["srv"]["metadata"]["labels"]
    assert roles["node-role.kubernetes.io/control-plane"] == "true"


def test_disabled_components_are_absent(cluster: Cluster) -> None:
    names = cluster.kubectl("get", "deployments,daemonsets", "-n", "kube-system", "-o",
                            "name").stdout.split()
    assert "deployment.apps/coredns" in names
    assert not [n for n in names if "traefik" in n or "svclb" in n]


MANIFEST = {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "ipaddresspools.metallb.io"},
     "spec": {"group": "metallb.io", "scope": "Namespaced",
              "names": {"kind": "IPAddressPool", "plural": "ipaddresspools"},
              "versions": [{"name": "v1beta1", "served": True}]}},
    # ready 10 s after it is applied: the refusal below must come before that even on a
    # loaded machine (with the suite's 2 s, two kubectl start-ups under load outran it)
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "controller", "namespace": "metallb-system",
                  "annotations": {"double.greenroom/ready-seconds": "10"}},
     "spec": {"template": {"metadata": {"labels": {"component": "controller"}}}}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "metallb-webhook-service", "namespace": "metallb-system"},
     "spec": {"selector": {"component": "controller"}, "ports": [{"port": 443}]}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
     "metadata": {"name": "metallb-webhook-configuration"},
     "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io",
                   "clientConfig": {"service": {"name": "metallb-webhook-service",
                                                "namespace": "metallb-system"}},
                   "rules": [{"apiGroups": ["metallb.io"]}]}]},
]}
POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lab
  namespace: metallb-system
spec:
  addresses:
  - 192.168.10.200-192.168.10.220
"""


def test_crs_need_their_crd_then_a_ready_webhook(cluster: Cluster) -> None:
    early = cluster.kubectl("apply", "-f", "-", stdin=POOL)
    assert early.returncode == 1 and 'no matches for kind "IPAddressPool"' in early.stderr
    applied = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(MANIFEST))
    assert applied.returncode == 0, applied.stderr
    refused = cluster.kubectl("apply", "-f", "-", stdin=POOL)
    assert refused.returncode == 1
    assert 'failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in refused.stderr
    ready = cluster.kubectl("wait", "--for=condition=Available", "deployment/controller",
                            "-n", "metallb-system", "--timeout=60s")
    assert ready.returncode == 0, ready.stderr
    assert cluster.kubectl("apply", "-f", "-", stdin=POOL).stdout == \
        "ipaddresspool.metallb.io/lab created\n"
    assert cluster.kubectl("apply", "-f", "-", stdin=POOL).stdout == \
        "ipaddresspool.metallb.io/lab unchanged\n"
    again = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(MANIFEST))
    assert "deployment.apps/controller unchanged" in again.stdout
    gone = cluster.kubectl("delete", "namespace", "metallb-system")
    assert gone.stdout == 'namespace "metallb-system" deleted\n'
    missing = cluster.kubectl("get", "ipaddresspool", "lab", "-n", "metallb-system")
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_wait_times_out_naming_the_object(cluster: Cluster) -> None:
    out = cluster.kubectl("wait", "--for=condition=Ready", "node/nothere", "--timeout=1s")
    assert out.returncode == 1
    assert out.stderr == "error: timed out waiting for the condition on nodes/nothere\n"


def test_kubectl_on_a_host_without_a_server_is_refused(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(DOUBLE), "kubectl", "get", "nodes"],
                         env=dict(os.environ, K3S_DOUBLE_ROOT=str(tmp_path)),
                         capture_output=True, text=True)
    assert out.returncode == 1 and "was refused" in out.stderr



def test_the_served_launcher_runs_the_installed_module_from_its_bytecode(
        cluster: Cluster) -> None:
    """What lab.up puts into a guest (the double as a module, its bytecode compiled) and what
    the release site serves as the binary (a launcher of it): a kubectl call through the
    launcher works, and loads the double from the cached bytecode (nothing compiled)."""
    import importlib.util

    from runbooks.lab.doubles.k3s import MODULE, install_module

    assert install_module(cluster.root) is True
    module = cluster.root / MODULE
    cached = Path(importlib.util.cache_from_source(str(module)))
    assert module.read_bytes() == DOUBLE.read_bytes() and cached.is_file()
    assert install_module(cluster.root) is False  # both current: nothing written again
    launcher = cluster.root / "usr/local/bin/k3s"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_bytes(release.asset("v1.33.4+k3s1", "k3s") or b"")
    env = {**cluster.env, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-v", str(launcher), *args], env=env,
                              capture_output=True, text=True, timeout=60)

    version = run("--version")
    assert version.stdout.startswith("k3s version v1.33.4+k3s1 "), version.stderr[-1500:]
    nodes = run("kubectl", "get", "nodes", "-o", "json")
    assert nodes.returncode == 0, nodes.stderr[-1500:]
    assert [n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]] == ["srv"]
    assert f"code object from '{cached}'" in nodes.stderr
    (cluster.root / MODULE).unlink()  # a guest lab.up has not seeded: said so, exit 1
    missing = subprocess.run([sys.executable, str(launcher), "kubectl", "get", "nodes"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "k3s.py is missing" in missing.stderr

# -- the release site -----------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "release.log"
    port = free_port()
    server = release.make_server(f"127.0.0.1:{port}", str(log), tamper=("k3s-arm64",))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", log
    server.shutdown()
    server.server_close()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def sums(text: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in text.splitlines()}


def test_release_assets_match_their_checksum_file(site: tuple[str, Path]) -> None:
    url, log = site
    listed = sums(get(f"{url}/v1.34.1%2Bk3s1/sha256sum-amd64.txt").decode())
    assert {"k3s", "k3s-airgap-images-amd64.tar", "k3s-airgap-images-amd64.tar.gz"} <= set(listed)
    for name in ("k3s", "k3s-airgap-images-amd64.tar.gz"):
        assert hashlib.sha256(get(f"{url}/v1.34.1+k3s1/{name}")).hexdigest() == listed[name]
    assert b'VERSION = "v1.34.1+k3s1"' in get(f"{url}/v1.34.1%2Bk3s1/k3s")
    assert "GET /v1.34.1%2Bk3s1/k3s 200" in log.read_text()


def test_versions_differ_and_unknown_assets_are_404(site: tuple[str, Path]) -> None:
    url, _ = site
    assert get(f"{url}/v1.34.1+k3s1/k3s") != get(f"{url}/v1.34.2+k3s1/k3s")
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"{url}/v1.34.1+k3s1/k3s-sparc")
    assert err.value.code == 404


def test_a_tampered_asset_no_longer_matches(site: tuple[str, Path]) -> None:
    url, _ = site
    listed = sums(get(f"{url}/v1.34.1+k3s1/sha256sum-arm64.txt").decode())
    served = get(f"{url}/v1.34.1+k3s1/k3s-arm64")
    assert hashlib.sha256(served).hexdigest() != listed["k3s-arm64"]


def test_the_doubles_yaml_reader_reads_what_greenroom_writes() -> None:
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("k3s_double", DOUBLE)
    assert spec is not None and spec.loader is not None
    double = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(double)
    registries = {"mirrors": {"192.168.10.2:5001": {"endpoint": ["http://192.168.10.2:5001"]},
                              "docker.io": {"endpoint": ["http://192.168.10.2:5001"]}},
                  "configs": {"192.168.10.2:5001": {"tls": {"insecure_skip_verify": True}}}}
    config = {"node-ip": "192.168.10.3", "tls-san": ["192.168.10.25"], "disable": ["traefik"],
              "write-kubeconfig-mode": "0600", "cluster-init": True,
              "kube-apiserver-arg": ["audit-log-maxage=3"], "list": [{"a": 1, "b": "x:y"}]}
    for data in (registries, config):
        assert double.mini_yaml("# header\n" + yaml.safe_dump(data, sort_keys=False)) == data


def test_a_kubectl_get_loads_no_openssl_and_no_server_modules(cluster: Cluster) -> None:
    """`k3s kubectl get ...` is a fact of every converged check (a Python start each in the
    lab): it imports neither hashlib/secrets (OpenSSL's library) nor the server's modules;
    pods' names (a sha256 of their workload's) are the same as hashlib's."""
    import hashlib as real

    probe = ("import runpy, sys\n"
             f"sys.argv = [{str(DOUBLE)!r}, 'kubectl', 'get', "
             "'nodes,namespaces,deployments,daemonsets,endpoints,services,pods', '-A', "
             "'-o', 'json']\n"
             "try:\n"
             f"    runpy.run_path({str(DOUBLE)!r}, run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = ('hashlib', '_hashlib', 'secrets', 'ssl', 'http.server', 'subprocess')\n"
             "sys.stderr.write('LOADED ' + ' '.join(m for m in heavy if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], env=cluster.env, capture_output=True,
                          text=True, timeout=60)
    assert done.stderr.strip().endswith("LOADED"), done.stderr
    items = json.loads(done.stdout)["items"]
    assert {i["kind"] for i in items} >= {"Node", "Namespace", "Deployment", "Pod"}
    import importlib.util

    spec = importlib.util.spec_from_file_location("k3s_double_sha", DOUBLE)
    assert spec is not None and spec.loader is not None
    double = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(double)
    assert double.sha256_hex(b"coredns") == real.sha256(b"coredns").hexdigest()
