"""The site's image list against real registries: per-runbook selection, pinning by the lock."""

from __future__ import annotations

import io
import json

import requests

from runbooks.registry.run import Options, load, load_images, save
from runbooks.registry.verify import verify

from .conftest import PASSWORD, USER
from .regkit import Builder, Registry, random_bytes

MANIFESTS = ("application/vnd.docker.distribution.manifest.v2+json, "
             "application/vnd.docker.distribution.manifest.list.v2+json, "
             "application/vnd.oci.image.index.v1+json, "
             "application/vnd.oci.image.manifest.v1+json")


def head(host, repo, ref):
    r = requests.head(f"http://{host}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFESTS})
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


def site(tmp_path, source_host, version="v1"):
    """A base list, a k3s list keyed by cluster.version, and an inventory pinning `version`."""
    (tmp_path / "images.d").mkdir()
    base = tmp_path / "images.yaml"
    base.write_text(f"images:\n  - {source_host}/kube/proxy:v1\n")
    (tmp_path / "images.d" / "k3s.yaml").write_text(
        "section: cluster\nversion: cluster.version\nversions:\n"
        f"  v1: [{source_host}/coredns/coredns:v1.8.0]\n"
        f"  v2: [{source_host}/kube/apiserver:v1]\n"
        f"images:\n  - {{ref: {source_host}/deep/nested/single:1, when: {{network.vip: '*'}}}}\n")
    inventory = tmp_path / "site.yaml"
    inventory.write_text(f"site: t\nnetwork: {{vip: 10.0.0.5}}\ncluster: {{version: {version}}}\n")
    return base, inventory


def test_runbook_images_for_the_pinned_version(tmp_path, source, target, creds_env):
    base, inventory = site(tmp_path, source.host)
    out = io.StringIO()
    opts = Options(images=str(base), inventory=str(inventory), to=target.host, backoff=0.01,
                   runbook=("k3s",))
    summary = load_images(opts, out)
    assert (summary.copied, summary.failed) == (2, []), out.getvalue()
    assert "images for this site: k3s: 2 (v1)" in out.getvalue()
    assert head(target.host, "coredns/coredns", "v1.8.0")
    assert head(target.host, "deep/nested/single", "1")
    assert head(target.host, "kube/proxy", "v1") is None, "--runbook k3s left the base out"
    assert head(target.host, "kube/apiserver", "v1") is None, "v2's images are not v1's"
    checks = verify(Options(images=str(base), inventory=str(inventory), to=target.host))
    assert [c.ok for c in checks] == [False, True, True]      # the base image is missing
    summary = load_images(Options(images=str(base), inventory=str(inventory), to=target.host,
                                  backoff=0.01), io.StringIO())
    assert (summary.copied, summary.skipped) == (1, 2)
    assert all(c.ok for c in verify(Options(images=str(base), inventory=str(inventory),
                                            to=target.host)))


def test_lock_pins_the_digest_until_refresh(tmp_path, source, target, creds_env):
    builder = Builder(source.host, (USER, PASSWORD))
    first = builder.image("pin/me", "arm64", [random_bytes(5000, 40)], tag="1")
    images = tmp_path / "images.txt"
    images.write_text(f"{source.host}/pin/me:1\n")
    opts = Options(images=str(images), to=target.host, backoff=0.01)
    assert load_images(opts, io.StringIO()).copied == 1
    lock = json.loads((tmp_path / "images.lock").read_text())["images"]
    assert lock[f"{source.host}/pin/me:1"]["digest"] == first["digest"]
    moved = builder.image("pin/me", "arm64", [random_bytes(5000, 41)], tag="1")
    assert moved["digest"] != first["digest"]
    fresh = Registry(tmp_path / "fresh")
    try:
        again = Options(images=str(images), to=fresh.host, backoff=0.01)
        assert load_images(again, io.StringIO()).copied == 1
        assert head(fresh.host, "pin/me", "1") == first["digest"], "the lock pins, not the tag"
        refresh = Options(images=str(images), to=fresh.host, backoff=0.01, refresh=True)
        assert load_images(refresh, io.StringIO()).copied == 1
        assert head(fresh.host, "pin/me", "1") == moved["digest"]
    finally:
        fresh.stop()
    lock = json.loads((tmp_path / "images.lock").read_text())["images"]
    assert lock[f"{source.host}/pin/me:1"]["digest"] == moved["digest"]


def test_save_and_load_carry_one_runbooks_images(tmp_path, source, target, creds_env):
    """--runbook k3s: the layout holds exactly k3s's images for the pinned version; loaded
    into an empty registry, verify finds them under their upstream repository paths."""
    base, inventory = site(tmp_path, source.host)
    layout = tmp_path / "carry"
    chosen = dict(images=str(base), inventory=str(inventory), runbook=("k3s",))
    summary = save(Options(**chosen), str(layout), out=io.StringIO())
    assert (summary.copied, summary.failed) == (2, [])
    index = json.loads((layout / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert names == {f"{source.host}/coredns/coredns:v1.8.0",
                     f"{source.host}/deep/nested/single:1"}
    summary = load(Options(to=target.host), str(layout), out=io.StringIO())
    assert (summary.copied, summary.failed) == (2, [])
    checks = verify(Options(**chosen, to=target.host))
    assert [c.ok for c in checks] == [True, True], [c.detail for c in checks]
    assert head(target.host, "kube/proxy", "v1") is None
