"""The common KubeconfigMerged step (runbooks.common.kubeconfig_step), as k3s and microk8s use
it: check mode writes nothing, the first run adds, a second run changes nothing, a changed
server updates, other contexts are kept, a failed read names the host and the command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbooks.common.kubeconfig_step import KubeconfigMerged
from runbooks.core.facts import FactResult
from runbooks.core.steps import StepFailed
from tests.support.kubeconfig import OTHER_KUBECONFIG, users_own_kubeconfig

K3S_YAML = """\
apiVersion: v1
clusters: [{name: default, cluster: {server: 'https://127.0.0.1:6443',
  certificate-authority-data: Q0E=}}]
users: [{name: default, user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}}]
contexts: [{name: default, context: {cluster: default, user: default}}]
current-context: default
"""
MICROK8S_CONFIG = """\
apiVersion: v1
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://10.0.0.3:16443'}
  name: microk8s-cluster
contexts:
- context: {cluster: microk8s-cluster, user: admin}
  name: microk8s
current-context: microk8s
kind: Config
preferences: {}
users:
- name: admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""
@dataclass
class Host:
    name: str = "seed"


@dataclass
class Ctx:
    check: bool = False
    host: Host = field(default_factory=Host)


def step(path: Path, check: bool = False, what: str = "k3s") -> KubeconfigMerged:
    read = "cat /etc/rancher/k3s/k3s.yaml" if what == "k3s" else "microk8s config"
    ctx: Any = Ctx(check)
    return KubeconfigMerged(ctx, "lab", "https://192.168.10.25:6443", path, read=read,
                            what=what)


@pytest.mark.parametrize("what,source", [("k3s", K3S_YAML), ("microk8s", MICROK8S_CONFIG)],
                         ids=["k3s-kubeconfig", "microk8s-config"])
def test_check_mode_writes_nothing_then_merges_once(tmp_path: Path, what: str,
                                                    source: str) -> None:
    path = tmp_path / "config"
    users_own_kubeconfig(path)
    assert step(path, what=what).facts() == {
        "kubeconfig": "cat /etc/rancher/k3s/k3s.yaml" if what == "k3s" else "microk8s config"}
    dry = step(path, check=True, what=what).plan({"kubeconfig": FactResult(0, source)})
    assert [c.summary for c in dry] == [
        f"add cluster, user and context lab in {path} (other contexts kept)"]
    assert dry[0].actions == ()
    assert path.read_text() == OTHER_KUBECONFIG
    real = step(path, what=what)
    assert real.plan({"kubeconfig": FactResult(0, source)})
    data = yaml.safe_load(path.read_text())
    assert [c["name"] for c in data["contexts"]] == ["work", "lab"]
    assert data["current-context"] == "work"
    lab = next(c for c in data["clusters"] if c["name"] == "lab")
    assert lab["cluster"]["server"] == "https://192.168.10.25:6443"
    assert next(u for u in data["users"] if u["name"] == "work")["user"] == {"token": "keep-me"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert real.plan({"kubeconfig": FactResult(0, source)}) == []


def test_a_moved_server_is_an_update(tmp_path: Path) -> None:
    path = tmp_path / "config"
    step(path).plan({"kubeconfig": FactResult(0, K3S_YAML)})
    ctx: Any = Ctx()
    moved = KubeconfigMerged(ctx, "lab", "https://192.168.10.26:6443", path,
                             read="cat /etc/rancher/k3s/k3s.yaml", what="k3s")
    changes = moved.plan({"kubeconfig": FactResult(0, K3S_YAML)})
    assert [c.summary for c in changes] == [
        f"update cluster, user and context lab in {path} (other contexts kept)"]
    assert "https://192.168.10.26:6443" in path.read_text()


@pytest.mark.parametrize("check", [True, False], ids=["check-mode", "converge"])
def test_a_failed_read(tmp_path: Path, check: bool) -> None:
    path = tmp_path / "config"
    merged = step(path, check=check, what="microk8s")
    if check:
        changes = merged.plan({"kubeconfig": FactResult(1, "")})
        assert changes[0].summary == (f"would merge context lab into {path} once microk8s "
                                      "runs on seed")
    else:
        with pytest.raises(StepFailed, match=r"`microk8s config` failed on seed \(exit 1\): "
                                             r"is microk8s running\?"):
            merged.plan({"kubeconfig": FactResult(1, "")})
    assert not path.exists()


def test_a_broken_kubeconfig_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [oops\n")
    with pytest.raises(StepFailed, match=str(path)):
        step(path).plan({"kubeconfig": FactResult(0, K3S_YAML)})
    assert path.read_text() == "clusters: [oops\n"
