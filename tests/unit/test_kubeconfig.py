"""Kubeconfig merge (runbooks.common.kubeconfig), checked with the real `kubectl config`.

Two k3s clusters both call everything `default`; `KUBECONFIG=a:b kubectl config view
--flatten` would keep only the first. The merge renames to the site first and replaces only
entries of that name, so other contexts come out byte-identical as kubectl reads them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runbooks.common.kubeconfig import (
    KubeconfigError,
    kubeconfig_path,
    merge_kubeconfig,
    names_in,
    remove_site,
    site_kubeconfig,
    write_kubeconfig,
)

K3S_YAML = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
"""
OTHER = """\
apiVersion: v1
kind: Config
clusters:
- name: work
  cluster: {server: 'https://10.0.0.1:443', insecure-skip-tls-verify: true}
users:
- name: work-admin
  user: {token: abc123}
contexts:
- name: work
  context: {cluster: work, user: work-admin, namespace: team}
current-context: work
preferences: {colors: true}
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def k3s_yaml(tag: str) -> str:
    return K3S_YAML.format(ca=b64(f"ca-{tag}"), cert=b64(f"cert-{tag}"), key=b64(f"key-{tag}"))


def kubectl_view(path: Path) -> dict:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (Debian: kubernetes-client)")
    out = subprocess.run(["kubectl", "config", "view", "--raw", "-o", "json",
                          "--kubeconfig", str(path)], capture_output=True, text=True,
                         check=True, env={**os.environ, "HOME": str(path.parent)})
    return json.loads(out.stdout)


def by_name(view: dict, key: str) -> dict:
    return {item["name"]: item for item in view.get(key) or []}


def test_site_kubeconfig_renames_everything_and_points_at_the_server() -> None:
    site = site_kubeconfig(k3s_yaml("a"), "lab", "https://192.168.10.25:6443")
    assert [c["name"] for c in site["clusters"]] == ["lab"]
    assert site["clusters"][0]["cluster"]["server"] == "https://192.168.10.25:6443"
    assert site["contexts"][0] == {"name": "lab", "context": {"cluster": "lab", "user": "lab"}}
    assert site["users"][0]["user"]["client-key-data"] == b64("key-a")


def test_merge_keeps_other_contexts_as_kubectl_reads_them(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(OTHER)
    before = kubectl_view(config)
    merged = merge_kubeconfig(OTHER, site_kubeconfig(k3s_yaml("a"), "lab",
                                                     "https://192.168.10.25:6443"))
    config.write_text(merged)
    after = kubectl_view(config)
    for key in ("clusters", "users", "contexts"):
        assert by_name(after, key)["work" if key != "users" else "work-admin"] == \
            by_name(before, key)["work" if key != "users" else "work-admin"]
    assert after["current-context"] == "work"  # not switched away from the user's choice
    assert after["preferences"] == before["preferences"]
    lab = by_name(after, "clusters")["lab"]["cluster"]
    assert lab["server"] == "https://192.168.10.25:6443"
    assert by_name(after, "contexts")["lab"]["context"] == {"cluster": "lab", "user": "lab"}


def test_two_k3s_clusters_both_survive_unlike_flatten(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(k3s_yaml("a"))
    b.write_text(k3s_yaml("b"))
    flat = subprocess.run(["kubectl", "config", "view", "--flatten", "-o", "json"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "KUBECONFIG": f"{a}:{b}", "HOME": str(tmp_path)})
    if flat.returncode == 0:  # the trap this module avoids: one `default` cluster is lost
        assert len(json.loads(flat.stdout)["clusters"]) == 1
    text = merge_kubeconfig(None, site_kubeconfig(k3s_yaml("a"), "lab", "https://a:6443"))
    text = merge_kubeconfig(text, site_kubeconfig(k3s_yaml("b"), "demo", "https://b:6443"))
    config = tmp_path / "config"
    config.write_text(text)
    view = kubectl_view(config)
    servers = {n: c["cluster"]["server"] for n, c in by_name(view, "clusters").items()}
    assert servers == {"lab": "https://a:6443", "demo": "https://b:6443"}
    assert view["current-context"] == "lab"  # the file had none: the first site becomes it
    keys = {n: u["user"]["client-key-data"] for n, u in by_name(view, "users").items()}
    assert keys == {"lab": b64("key-a"), "demo": b64("key-b")}


def test_merging_again_returns_the_same_bytes() -> None:
    site = site_kubeconfig(k3s_yaml("a"), "lab", "https://192.168.10.25:6443")
    once = merge_kubeconfig(OTHER, site)
    assert merge_kubeconfig(once, site) is once


def test_a_new_server_or_key_replaces_only_the_sites_entries() -> None:
    once = merge_kubeconfig(OTHER, site_kubeconfig(k3s_yaml("a"), "lab", "https://x:6443"))
    twice = merge_kubeconfig(once, site_kubeconfig(k3s_yaml("c"), "lab", "https://y:6443"))
    data = yaml.safe_load(twice)
    assert [c["name"] for c in data["clusters"]] == ["work", "lab"]
    assert data["clusters"][1]["cluster"]["server"] == "https://y:6443"
    assert data["users"][1]["user"]["client-key-data"] == b64("key-c")


def test_remove_site_leaves_the_rest(tmp_path: Path) -> None:
    merged = merge_kubeconfig(OTHER, site_kubeconfig(k3s_yaml("a"), "lab", "https://x:6443"))
    removed = remove_site(merged, "lab")
    assert removed is not None
    assert names_in(removed) == {"clusters": ["work"], "users": ["work-admin"],
                                 "contexts": ["work"]}
    assert remove_site(removed, "lab") is removed
    config = tmp_path / "config"
    config.write_text(removed)
    assert by_name(kubectl_view(config), "contexts")["work"]["context"]["namespace"] == "team"


@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "holds a list"),
    ("clusters: {a: 1}\n", "`clusters` must be a list"),
    ("apiVersion: v1\nclusters: [\n", "not valid YAML"),
], ids=["not-a-mapping", "clusters-not-a-list", "broken-yaml"])
def test_a_bad_kubeconfig_is_refused_with_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        merge_kubeconfig(text, site_kubeconfig(k3s_yaml("a"), "lab", "https://x:6443"))


def test_write_is_private_and_path_follows_kubeconfig_env(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    target = tmp_path / "kube" / "config"
    write_kubeconfig(target, "apiVersion: v1\n")
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("KUBECONFIG", f"{target}{os.pathsep}/elsewhere")
    assert kubeconfig_path(None) == target
    assert kubeconfig_path("~/x") == Path(os.path.expanduser("~/x"))
