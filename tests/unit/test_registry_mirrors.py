"""One mirror entry per upstream registry on every node: the upstreams read from the image
lists, the per-upstream hosts.toml, and the writers that must agree byte for byte (k3s's
registries.yaml and microk8s's launch configuration against registry.trust's mergers), so a
registry.trust after `inv k3s` or `inv microk8s` changes nothing."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from runbooks.common import containerd
from runbooks.common import registry_trust as trust
from runbooks.common.registry import mirrored_upstreams, upstream_host
from runbooks.core.steps import StepFailed

EP = "192.168.10.2:5001"
URL = f"http://{EP}"
UPSTREAMS = ("docker.io", "ghcr.io", "quay.io", "registry.k8s.io")


@pytest.mark.parametrize("ref, host", [
    ("nginx:1.27", "docker.io"),
    ("rancher/klipper-lb:v0.4.13", "docker.io"),
    ("docker.io/rancher/mirrored-pause:3.6", "docker.io"),
    ("quay.io/metallb/speaker:v0.14.9", "quay.io"),
    ("registry.k8s.io/coredns/coredns:v1.8.0", "registry.k8s.io"),
    ("localhost/lab/hello:v1", "localhost"),
    ("gateway:5001/pause:3.9", "gateway:5001"),
    ("ghcr.io/kube-vip/kube-vip@sha256:" + "0" * 64, "ghcr.io"),
])
def test_upstream_host(ref, host):
    assert upstream_host(ref) == host


def test_the_repositorys_lists_name_the_four_upstreams():
    assert mirrored_upstreams() == UPSTREAMS


def test_upstreams_from_every_version_and_condition(tmp_path):
    base = tmp_path / "images.yaml"
    base.write_text("images:\n  - ref: registry.k8s.io/pause:3.6\n    was: k8s.gcr.io/pause\n"
                    "  - busybox\n")
    (tmp_path / "images.d").mkdir()
    (tmp_path / "images.d" / "a.yaml").write_text(
        "runbook: a\nsection: a\nversion: a.version\nversions:\n"
        "  v1: [quay.io/x/y:1]\n"
        "  v2:\n    - {ref: gcr.io/z/w:2, when: {a.mode: bgp}}\n"
        "images:\n  - {ref: ghcr.io/k/v:1, when: {network.vip: '*'}}\n")
    assert mirrored_upstreams(base) == ("docker.io", "gcr.io", "ghcr.io", "quay.io",
                                        "registry.k8s.io")


def test_upstreams_from_a_plain_text_list(tmp_path):
    base = tmp_path / "list.txt"
    base.write_text("# the seed's\nquay.io/a/b:1  # trailing\n\nregistry.k8s.io/pause:3.6\n")
    assert mirrored_upstreams(base) == ("quay.io", "registry.k8s.io")


def test_upstreams_read_once_per_version_of_the_lists(tmp_path, monkeypatch):
    import os

    base = tmp_path / "images.yaml"
    base.write_text("images:\n  - quay.io/a/b:1\n")
    parsed = []
    load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda *a, **k: parsed.append(1) or load(*a, **k))
    for _node in ("rp0", "rp1", "lp0"):  # each node's plans ask, one process
        assert mirrored_upstreams(base) == ("quay.io",)
    assert len(parsed) == 1
    base.write_text("images:\n  - ghcr.io/a/b:1\n")  # the list edited: read again
    os.utime(base, ns=(1, 1))
    assert mirrored_upstreams(base) == ("ghcr.io",) and len(parsed) == 2


@pytest.mark.parametrize("text, words", [
    pytest.param(None, "cannot read the image list", id="missing"),
    pytest.param("images: [\n", "not valid YAML", id="invalid-yaml"),
])
def test_unreadable_list_refused_naming_it(tmp_path, text, words):
    base = tmp_path / "images.yaml"
    if text is not None:
        base.write_text(text)
    with pytest.raises(StepFailed, match=words) as caught:
        mirrored_upstreams(base)
    assert str(base) in str(caught.value)


# -- certs.d/<upstream>/hosts.toml -------------------------------------------------------------

def test_upstream_hosts_toml_sends_its_pulls_to_the_local_registry():
    text = containerd.hosts_toml(EP, "quay.io")
    assert text.startswith("# quay.io: ")
    assert tomllib.loads(text) == {"server": URL, "host": {URL: {"capabilities": [
        "pull", "resolve"]}}}
    assert containerd.merge_hosts_toml(text, EP, "quay.io") == text


def test_upstream_hosts_toml_merge_keeps_the_users_hosts():
    users = ('server = "https://registry-1.docker.io"\n\n[host."https://m.local"]\n'
             '  capabilities = ["pull"]\n')
    merged = containerd.merge_hosts_toml(users, EP, "docker.io")
    data = tomllib.loads(merged)
    assert data["server"] == URL  # nodes pull only from the site's registry
    assert data["host"]["https://m.local"] == {"capabilities": ["pull"]}
    assert data["host"][URL] == {"capabilities": ["pull", "resolve"]}
    assert containerd.merge_hosts_toml(merged, EP, "docker.io") == merged


def test_registry_hosts_local_first_then_each_upstream_once():
    files = containerd.registry_hosts(EP, ("docker.io", EP, "quay.io"))
    assert list(files) == [EP, "docker.io", "quay.io"]
    assert [s.path for s in containerd.registry_hosts_steps("/d", EP, upstreams=UPSTREAMS)] \
        == [f"/d/{n}/hosts.toml" for n in (EP, *UPSTREAMS)]


# -- the other writers agree with registry.trust ------------------------------------------------

def test_trust_after_k3s_changes_nothing():
    from runbooks.k3s.plan import registry_steps

    (k3s_step,) = registry_steps(EP, ("restart k3s",))
    written = k3s_step.transform(None)
    assert written is not None
    data = yaml.safe_load(written)
    assert {n: m["endpoint"] for n, m in data["mirrors"].items()} == {
        n: [URL] for n in (EP, *UPSTREAMS)}
    (trust_step,) = trust.trust_steps("k3s", EP)
    assert trust_step.path == k3s_step.path
    assert trust_step.transform(written) == written


def test_trust_after_microk8s_changes_nothing():
    from runbooks.common.microk8s_cluster import Microk8sCluster
    from runbooks.microk8s import config as cfg

    cluster = Microk8sCluster(channel="1.32/stable", nodes=("m0",), addresses={"m0": "10.0.0.3"})
    launch = yaml.safe_load(cfg.launch_yaml(cluster, EP))["containerdRegistryConfigs"]
    assert list(launch) == [EP, *UPSTREAMS]
    steps = trust.trust_steps("microk8s", EP)
    assert [s.path for s in steps] == [f"{trust.MICROK8S_CERTS_DIR}/{n}/hosts.toml"
                                       for n in launch]
    for step, (name, text) in zip(steps, launch.items(), strict=True):
        assert step.transform(text) == text, name


def test_trust_after_pi_prep_changes_nothing():
    steps = trust.trust_steps("containerd", EP)[1:]
    written = {s.path: s.transform(None) for s in containerd.registry_hosts_steps(
        containerd.CERTS_DIR, EP)}
    assert [s.path for s in steps] == list(written)
    for step in steps:
        assert step.transform(written[step.path]) == written[step.path]
