"""registry.save / registry.load (OCI image layout round trip) and registry.verify."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from runbooks.registry.run import Options, load, save
from runbooks.registry.verify import verify

from .regkit import Builder
from .test_load_images import GOOD, head, run, write_list

ROOT = Path(__file__).resolve().parents[2]


def test_save_load_round_trip(tmp_path, source, target, creds_env):
    images = write_list(tmp_path, source.host, GOOD)
    layout = tmp_path / "carry"
    summary = save(Options(images=str(images)), str(layout), out=io.StringIO())
    assert (summary.copied, summary.failed) == (4, [])
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}
    assert names == {f"{source.host}/{n}" for n in GOOD}
    for m in index["manifests"]:
        assert (layout / "blobs" / "sha256" / m["digest"][7:]).is_file()
    assert (layout / "blobs" / "sha256" / source.big[7:]).stat().st_size == 2_600_000

    summary = load(Options(to=target.host), str(layout), out=io.StringIO())
    assert (summary.copied, summary.failed) == (4, [])
    for name in GOOD:
        repo, tag = name.rsplit(":", 1)
        assert head(target.host, repo, tag) == source.digests[name]["linux/arm64"]
    checks = verify(Options(images=str(images), to=target.host))
    assert [c.ok for c in checks] == [True] * 4, [c.detail for c in checks]


def test_load_detects_a_corrupt_layout_blob(tmp_path, source, target, creds_env):
    images = write_list(tmp_path, source.host, ["kube/apiserver:v1"])
    layout = tmp_path / "carry"
    save(Options(images=str(images)), str(layout), out=io.StringIO())
    blob = layout / "blobs" / "sha256" / source.big[7:]
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0x55
    blob.write_bytes(bytes(data))
    summary = load(Options(to=target.host), str(layout), out=io.StringIO())
    assert len(summary.failed) == 1 and "corrupt" in summary.failed[0][1]
    assert head(target.host, "kube/apiserver", "v1") is None


def test_verify_reports_missing_and_mismatched(tmp_path, source, target, creds_env):
    run(tmp_path, source, target.host, names=GOOD[:2])
    images = write_list(tmp_path, source.host, GOOD[:3], name="verify.txt")
    (tmp_path / "verify.lock").write_text((tmp_path / "images.lock").read_text())
    # overwrite kube/proxy:v1 in the target with its amd64 manifest: wrong digest and platform
    src = requests.get(f"http://{source.host}/v2/kube/proxy/manifests/"
                       f"{source.digests['kube/proxy:v1']['linux/amd64']}",
                       auth=("puller", "s3cret-Pa55"),
                       headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    b = Builder(target.host)
    doc = src.json()
    for d in [doc["config"], *doc["layers"]]:
        blob = requests.get(f"http://{source.host}/v2/kube/proxy/blobs/{d['digest']}",
                            auth=("puller", "s3cret-Pa55")).content
        b.blob("kube/proxy", blob)
    b.manifest("kube/proxy", "v1", doc, doc["mediaType"])
    checks = {c.name: c for c in verify(Options(images=str(images), to=target.host,
                                                backoff=0.01), blobs=True)}
    assert checks["kube/apiserver:v1"].ok, checks["kube/apiserver:v1"].detail
    assert not checks["kube/proxy:v1"].ok and "differs from lock" in checks["kube/proxy:v1"].detail
    assert not checks["coredns/coredns:v1.8.0"].ok
    assert "missing" in checks["coredns/coredns:v1.8.0"].detail


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "runbooks.registry", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=60)


def test_cli_exit_codes_and_no_secret_in_output(tmp_path, source, target, creds_env):
    images = write_list(tmp_path, source.host, ["kube/proxy:v1", "amd/only:1"])
    env = dict(os.environ)
    res = _cli("load-images", "--images", str(images), "--to", target.host, env=env)
    assert res.returncode == 1, res.stderr
    assert "copied 1, skipped 0, failed 1" in res.stdout
    assert "FAILED" in res.stdout and "amd/only" in res.stdout
    assert "s3cret-Pa55" not in res.stdout + res.stderr
    res = _cli("verify", "--images", str(images), "--to", target.host, env=env)
    assert res.returncode == 1 and "1 of 2 images verified" in res.stdout
    res = _cli("load-images", "--images", str(tmp_path / "nope.yaml"), "--to", target.host)
    assert res.returncode == 2 and "cannot read image list" in res.stderr
    res = _cli("load-images", "--images", str(images), "--to", "no-port")
    assert res.returncode == 2 and "expected HOST:PORT" in res.stderr


def test_noop_is_answered_before_invoke_and_prints_what_the_task_prints(tmp_path, source,
                                                                         target, creds_env):
    """A no-op `python -m runbooks.registry load-images` does not import Invoke (its import
    costs more than the 16 HEADs) and prints what the task prints; with one image missing,
    the task itself runs and copies it."""
    images = write_list(tmp_path, source.host, GOOD)
    args = ("load-images", "--images", str(images), "--to", target.host, "-j", "4")
    first = _cli(*args)
    assert first.returncode == 0 and "copied 4, skipped 0" in first.stdout, first.stderr
    probe = ("import sys, runpy; sys.argv = ['x', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('runbooks.registry', run_name='__main__')\n"
             "finally:\n    print('invoke imported:', 'invoke' in sys.modules)")
    fast = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert fast.returncode == 0, fast.stderr
    assert "invoke imported: False" in fast.stdout
    slow = _cli(*args[:-2], "--jobs=4", "--rewrite", "none=none")  # --rewrite: Invoke's path
    strip = [ln for ln in fast.stdout.splitlines() if not ln.startswith("invoke imported")]
    assert [ln.split(" in ")[0] for ln in strip] == \
        [ln.split(" in ")[0] for ln in slow.stdout.splitlines()]
    assert strip[-1].startswith("copied 0, skipped 4, failed 0")
    repo, tag = GOOD[1].rsplit(":", 1)
    digest = head(target.host, repo, tag)
    requests.delete(f"http://{target.host}/v2/{repo}/manifests/{digest}").raise_for_status()
    again = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "invoke imported: True" in again.stdout and "copied 1, skipped 3" in again.stdout


INV_PROBE = ("import sys, runpy\n"
             "sys.argv = ['inv', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('invoke', run_name='__main__')\n"
             "finally:\n"
             "    print('other collections loaded:',\n"
             "          any(m.endswith('.tasks') and m != 'runbooks.registry.tasks'\n"
             "              for m in sys.modules if m.startswith('runbooks.')))")


def _inv(*args):
    """`inv ARGS` from the project's root (Invoke's own program, our tasks.py), reporting
    whether any other runbook's collection was loaded."""
    return subprocess.run([sys.executable, "-c", INV_PROBE, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_inv_noop_is_answered_before_the_collections_load(tmp_path, source, target,
                                                          creds_env):
    """`inv registry.load-images` with nothing to copy is answered by tasks.py before any
    other runbook's collection loads, and prints what Invoke's run of the task prints; a
    core option first, or one image missing, takes Invoke's whole path."""
    images = write_list(tmp_path, source.host, GOOD)
    args = ("--images", str(images), "--to", target.host, "-j", "4")
    first = _inv("registry.load-images", *args)
    assert first.returncode == 0 and "copied 4, skipped 0" in first.stdout, first.stderr
    assert "other collections loaded: True" in first.stdout
    assert (f"nodes have no mirror entry for {source.host} yet" in first.stdout
            and f"inv registry.trust --images {images}" in first.stdout)
    fast = _inv("registry.load-images", *args)
    assert fast.returncode == 0, fast.stderr
    assert "other collections loaded: False" in fast.stdout
    slow = _inv("-e", "registry.load-images", *args)        # a core option: Invoke's path
    assert slow.returncode == 0 and "other collections loaded: True" in slow.stdout
    assert [ln.split(" in ")[0] for ln in fast.stdout.splitlines()[:-1]] == \
        [ln.split(" in ")[0] for ln in slow.stdout.splitlines()[:-1]]
    assert fast.stdout.splitlines()[-2].startswith("copied 0, skipped 4, failed 0")
    repo, tag = GOOD[2].rsplit(":", 1)
    digest = head(target.host, repo, tag)
    requests.delete(f"http://{target.host}/v2/{repo}/manifests/{digest}").raise_for_status()
    again = _inv("registry.load-images", *args)
    assert again.returncode == 0, again.stderr
    assert "other collections loaded: True" in again.stdout
    assert "copied 1, skipped 3" in again.stdout
