"""registry.load-images against real docker-registry processes: copy, filter, skip, mount."""

from __future__ import annotations

import io
import re

import requests

from runbooks.registry.run import Options, load_images

from .regkit import DOCKER_LIST, OCI_INDEX

GOOD = ["kube/apiserver:v1", "kube/proxy:v1", "coredns/coredns:v1.8.0", "deep/nested/single:1"]


def write_list(tmp_path, source_host, names, name="images.txt"):
    path = tmp_path / name
    path.write_text("# test images\n" + "".join(f"{source_host}/{n}\n" for n in names))
    return path


def run(tmp_path, source, target_host, names=GOOD, **kw):
    out = io.StringIO()
    images = kw.pop("images", None) or write_list(tmp_path, source.host, names)
    summary = load_images(Options(images=str(images), to=target_host, backoff=0.01, **kw), out)
    return summary, out.getvalue()


def head(host, repo, ref, accept=f"{DOCKER_LIST}, {OCI_INDEX}, "
         "application/vnd.docker.distribution.manifest.v2+json, "
         "application/vnd.oci.image.manifest.v1+json"):
    r = requests.head(f"http://{host}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


def test_copy_filters_to_arm64_and_keeps_names(tmp_path, source, target, creds_env):
    summary, out = run(tmp_path, source, target.host)
    assert (summary.copied, summary.skipped, summary.failed) == (4, 0, [])
    for name in GOOD:
        repo, tag = name.rsplit(":", 1)
        assert head(target.host, repo, tag) == source.digests[name]["linux/arm64"], name
    assert re.search(r"coredns/coredns:v1.8.0 -> coredns/coredns:v1.8.0: linux/arm64/v8 "
                     r"manifest sha256:[0-9a-f]{64} \(from index sha256:", out)
    # the amd64 manifests were not copied
    amd = source.digests["kube/apiserver:v1"]["linux/amd64"]
    assert head(target.host, "kube/apiserver", amd) is None
    assert (tmp_path / "images.lock").exists()


def test_all_platforms_keeps_index_digest(tmp_path, source, target, creds_env):
    summary, _ = run(tmp_path, source, target.host, all_platforms=True)
    assert not summary.failed
    for name in GOOD:
        repo, tag = name.rsplit(":", 1)
        assert head(target.host, repo, tag) == source.digests[name]["index"], name
        for plat in ("linux/amd64", "linux/arm64"):
            if plat in source.digests[name]:
                assert head(target.host, repo, source.digests[name][plat]), (name, plat)


def test_rerun_costs_one_manifest_request_per_image(tmp_path, source, target, creds_env):
    run(tmp_path, source, target.host)
    before = len(target.log_lines())
    summary, _ = run(tmp_path, source, target.host)
    new = target.log_lines()[before:]
    assert (summary.copied, summary.skipped) == (0, 4)
    assert len(new) == 4 and all('"HEAD /v2/' in ln and "/manifests/" in ln for ln in new), new


def test_rerun_without_lock_skips_after_comparing_upstream(tmp_path, source, target, creds_env):
    run(tmp_path, source, target.host)
    (tmp_path / "images.lock").unlink()
    before = len(target.log_lines())
    summary, _ = run(tmp_path, source, target.host)
    new = target.log_lines()[before:]
    assert (summary.copied, summary.skipped) == (0, 4)
    assert not [ln for ln in new if '"PUT ' in ln or '"POST ' in ln], new


def test_shared_blob_uploaded_once_then_mounted(tmp_path, source, target, creds_env):
    summary, _ = run(tmp_path, source, target.host, jobs=8)
    assert not summary.failed
    log = target.log_lines()
    puts = [ln for ln in log if '"PUT ' in ln and f"digest={source.base.replace(':', '%3A')}" in ln
            or '"PUT ' in ln and f"digest={source.base}" in ln]
    mounts = [ln for ln in log if '"POST ' in ln and "mount=" in ln and source.base[7:] in ln]
    assert len(puts) == 1, puts
    assert len(mounts) == 3, mounts          # four repositories share the base layer
    for name in GOOD:
        repo = name.rsplit(":", 1)[0]
        r = requests.head(f"http://{target.host}/v2/{repo}/blobs/{source.base}")
        assert r.status_code == 200, repo


def test_present_blobs_are_skipped_not_uploaded(tmp_path, source, target, creds_env):
    run(tmp_path, source, target.host, names=["kube/apiserver:v1"])
    before = len(target.log_lines())
    summary, _ = run(tmp_path, source, target.host, names=["kube/apiserver:v1"],
                     all_platforms=True)
    new = target.log_lines()[before:]
    assert summary.copied == 1
    blob_puts = [ln for ln in new if '"PUT ' in ln and "/blobs/uploads/" in ln]
    # only the amd64 config and the amd64 layer are new; the shared base and arm64 blobs are not
    assert len(blob_puts) == 2, blob_puts
    assert not [ln for ln in blob_puts if source.base in ln or source.big in ln]


def test_rewrite_rule(tmp_path, source, target, creds_env):
    summary, _ = run(tmp_path, source, target.host, names=["coredns/coredns:v1.8.0"],
                     rewrite=("coredns/coredns=coredns",))
    assert summary.copied == 1
    assert head(target.host, "coredns", "v1.8.0") == \
        source.digests["coredns/coredns:v1.8.0"]["linux/arm64"]


def test_single_platform_mismatch_fails_alone(tmp_path, source, target, creds_env):
    summary, _ = run(tmp_path, source, target.host, names=["amd/only:1", "kube/proxy:v1"])
    assert summary.copied == 1
    assert [n for n, _ in summary.failed] == [f"{source.host}/amd/only:1"]
    assert "single-platform image is linux/amd64, wanted linux/arm64" in summary.failed[0][1]


def test_cold_target_costs_no_blob_or_tag_heads(tmp_path, source, target, creds_env):
    """Repositories missing from the target's catalog get no HEADs; present ones do."""
    from .regkit import Proxy, ProxyState

    px = Proxy(ProxyState(upstream=target.host))
    try:
        summary, _ = run(tmp_path, source, px.host)
        assert (summary.copied, summary.failed) == (4, [])
        heads = [p for m, p in px.state.log if m == "HEAD"]
        assert heads == [], heads
        assert [p for m, p in px.state.log if "_catalog" in p] == ["/v2/_catalog?n=1000"]
        px.state.log.clear()
        summary, _ = run(tmp_path, source, px.host, refresh=True)
        assert summary.skipped == 4
        assert len([p for m, p in px.state.log if m == "HEAD" and "/manifests/" in p]) == 4
    finally:
        px.stop()
