"""The microk8s double's kubectl is the k3s double's (no lab needed): what the common kubectl
layer sends for MetalLB works the same through `microk8s kubectl`, with the seed's nodes
and namespaces in the store, and `microk8s status -a` / `disable` for the addon refusal.

The double's module is loaded from its file and pointed at a temp dir (its paths are the
guest's); nothing outside that dir is touched.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from runbooks.lab import release

HERE = Path(__file__).resolve().parents[2] / "runbooks" / "lab" / "doubles"
MANIFEST = release.metallb_asset(["v0.14.9", "config", "manifests", "metallb-native.yaml"])
POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "default", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.30.240-192.168.30.250"]}}


@pytest.fixture
def mk8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("K3S_DOUBLE_READY_SECONDS", "1")
    spec = importlib.util.spec_from_file_location("mk8s_double", HERE / "microk8s" /
                                                  "microk8s.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = tmp_path / "current"
    for name, value in {"CURRENT": current,
                        "STATE": current / "var/greenroom-double/cluster.json",
                        "OBJECTS": current / "var/greenroom-double/kube",
                        "KUBE": HERE / "k3s" / "k3s.py"}.items():
        monkeypatch.setattr(module, name, str(value))
    module.save(module.STATE, {"installed_at": time.time() - 60, "addons": {"ingress": []},
                               "nodes": {"mk0": {"worker": False}, "mk1": {"worker": False},
                                         "mk2": {"worker": True}}})
    return module


def call(module: ModuleType, capsys: pytest.CaptureFixture[str], *argv: str,
         stdin: str = "") -> tuple[int, str, str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        module.microk8s(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.stdin = old
    out = capsys.readouterr()
    return code, out.out, out.err


def test_nodes_and_namespaces_of_the_seed(mk8s: ModuleType, capsys) -> None:
    code, out, err = call(mk8s, capsys, "kubectl", "get", "nodes", "--no-headers")
    assert code == 0, err
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["mk0", "Ready", "<none>"], ["mk1", "Ready", "<none>"], ["mk2", "Ready", "<none>"]]
    code, out, _ = call(mk8s, capsys, "kubectl", "get", "node", "mk1", "-o", "name")
    assert (code, out) == (0, "node/mk1\n")
    code, out, _ = call(mk8s, capsys, "kubectl", "get", "namespaces", "-o", "name")
    assert "namespace/ingress" in out.split() and "namespace/kube-system" in out.split()
    mk8s.microk8s(["remove-node", "mk2"])
    code, out, _ = call(mk8s, capsys, "kubectl", "get", "nodes", "-o", "name")
    assert out.split() == ["node/mk0", "node/mk1"]


def test_metallb_manifest_webhook_and_pool_through_microk8s_kubectl(mk8s: ModuleType,
                                                                    capsys) -> None:
    code, out, err = call(mk8s, capsys, "kubectl", "apply", "-f", "-",
                          stdin=MANIFEST.decode())
    assert code == 0, err
    assert "deployment.apps/controller created" in out
    code, _, err = call(mk8s, capsys, "kubectl", "wait", "--for=condition=Available",
                        "deployment/controller", "-n", "metallb-system", "--timeout=20s")
    assert code == 0, err
    tries = [call(mk8s, capsys, "kubectl", "apply", "-f", "-", stdin=json.dumps(POOL))
             for _ in range(4)]
    assert [t[0] for t in tries] == [1, 1, 1, 0], tries  # the manifest double refuses 3
    assert "failed calling webhook" in tries[0][2]
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "ingress", "namespace": "ingress"},
               "spec": {"type": "LoadBalancer", "loadBalancerIP": "192.168.30.240",
                        "selector": {"name": "nginx-ingress-microk8s"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}
    code, out, err = call(mk8s, capsys, "kubectl", "apply", "-f", "-",
                          stdin=json.dumps(service))
    assert (code, out) == (0, "service/ingress created\n"), err
    code, out, _ = call(mk8s, capsys, "kubectl", "get", "service", "ingress", "-n", "ingress",
                        "-o", "json")
    assert json.loads(out)["status"]["loadBalancer"]["ingress"] == [{"ip": "192.168.30.240"}]
    code, out, _ = call(mk8s, capsys, "kubectl", "apply", "-f", "-", stdin=json.dumps(service))
    assert out == "service/ingress unchanged\n"


def test_kubectl_is_refused_on_a_node_that_joined_another(mk8s: ModuleType, capsys) -> None:
    state = mk8s.load(mk8s.STATE, {})
    mk8s.save(mk8s.STATE, {**state, "joined": "192.168.30.3:25000"})
    code, _, err = call(mk8s, capsys, "kubectl", "get", "nodes")
    assert code == 1 and "127.0.0.1:16443 was refused" in err


def test_addon_status_enable_disable(mk8s: ModuleType, capsys) -> None:
    assert call(mk8s, capsys, "status", "-a", "metallb")[1] == "disabled\n"
    call(mk8s, capsys, "enable", "metallb:192.168.30.240-192.168.30.250")
    assert call(mk8s, capsys, "status", "--addon", "metallb")[1] == "enabled\n"
    assert mk8s.load(mk8s.STATE, {})["addons"]["metallb"] == ["192.168.30.240-192.168.30.250"]
    call(mk8s, capsys, "disable", "metallb")
    assert call(mk8s, capsys, "status", "-a", "metallb")[1] == "disabled\n"
