"""Every registry task has a docstring and help for every parameter; flags parse as documented."""

from __future__ import annotations

import inspect

from runbooks.registry.tasks import ns


def test_every_task_documents_every_parameter():
    assert sorted(ns.task_names) == ["check", "images", "load", "load-images",
                                     "patch-cluster", "save", "trust", "up", "verify"]
    for name in ns.task_names:
        task = ns[name]
        assert (task.__doc__ or "").strip(), name
        params = [p for p in inspect.signature(task.body).parameters if p != "c"]
        missing = [p for p in params if p not in task.help]
        assert not missing, (name, missing)


def test_load_images_module_import_is_lean():
    import subprocess
    import sys

    # yaml is not listed: invoke itself imports it
    code = ("import sys, runbooks.registry.tasks; heavy = ('requests', 'fabric', 'paramiko'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_patch_cluster_check_exits_1_on_a_diff_and_0_without(tmp_path, capsys):
    """--check: the diff against the target, nothing written, exit 1 while there is one."""
    from pathlib import Path

    import pytest
    from invoke import Context, Exit

    seed = Path(__file__).parent / "data" / "capi_seed_cluster.yaml"
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(seed.read_text())
    task = ns["patch-cluster"]
    with pytest.raises(Exit) as caught:
        task(Context(), str(manifest), check=True, inventory="hosts/lab.yaml")
    assert caught.value.code == 1
    out = capsys.readouterr().out
    assert f"+++ {manifest}" in out and f"would change {manifest}" in out
    assert manifest.read_text() == seed.read_text()          # nothing written
    patched = tmp_path / "patched.yaml"
    with pytest.raises(Exit) as caught:                       # --out: against that file
        task(Context(), str(manifest), out=str(patched), check=True, inventory="hosts/lab.yaml")
    assert caught.value.code == 1 and not patched.exists()
    task(Context(), str(manifest), out=str(patched), inventory="hosts/lab.yaml")
    capsys.readouterr()
    task(Context(), str(manifest), out=str(patched), check=True, inventory="hosts/lab.yaml")
    assert f"nothing to change in {patched}" in capsys.readouterr().out
    task(Context(), str(manifest), inventory="hosts/lab.yaml")
    task(Context(), str(manifest), check=True, inventory="hosts/lab.yaml")  # patched: exit 0
    assert manifest.read_text() == patched.read_text()


def test_images_names_the_mirror_entries_the_nodes_get(capsys):
    import json

    from invoke import Context

    ns["images"](Context(), inventory="hosts/lab.yaml", json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["node_mirror_entries"] == ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]
    assert set(data["upstream_registries"]) <= set(data["node_mirror_entries"])


def test_images_of_a_users_list_name_the_registries_only_trust_images_mirrors(tmp_path,
                                                                              capsys):
    import json

    from invoke import Context

    listing = tmp_path / "mine.txt"
    listing.write_text("nvcr.io/nvidia/k8s-device-plugin:v0.14.1\n"
                       "docker.io/library/nginx:1.25\ngcr.io/distroless/static:nonroot\n")
    ns["images"](Context(), images=str(listing), json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["upstream_registries"] == ["docker.io", "gcr.io", "nvcr.io"]
    assert data["needs_trust_images"] == ["gcr.io", "nvcr.io"]
    ns["images"](Context(), images=str(listing))
    out = capsys.readouterr().out
    assert ("nodes have no mirror entry for gcr.io, nvcr.io yet" in out
            and f"inv registry.trust --images {listing}" in out)
    ns["images"](Context(), inventory="hosts/lab.yaml")       # the project's lists: no hint
    assert "registry.trust --images" not in capsys.readouterr().out
