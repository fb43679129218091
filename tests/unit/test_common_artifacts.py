"""runbooks.common.artifacts: the node's copy (pulled from the gateway or pushed), the
gateway's copy (blobs + one manifest), the cache's stamps; and how the microk8s offline
install uses them (its gateway plan and the node's mirror URL)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbooks.common import artifacts
from runbooks.common.artifacts import (
    DOWN,
    EMPTY_DIGEST,
    FROM_GATEWAY,
    Artifact,
    BlobPushed,
    ManifestTagged,
    download_command,
    gateway_steps,
    manifest,
    matches,
    upload_command,
)
from runbooks.core.facts import FactResult, prepare
from runbooks.core.inventory import parse_inventory
from tests.unit.test_microk8s import BASE, THREE

DIGEST = hashlib.sha256(b"snap bytes").hexdigest()
MIRROR = f"http://192.168.10.2:5001/v2/greenroom/microk8s-snap/blobs/sha256:{DIGEST}"


def local(tmp_path: Path) -> Path:
    path = tmp_path / "microk8s_1.snap"
    path.write_bytes(b"snap bytes")
    return path


@pytest.mark.parametrize(("mirror", "out", "expected"), [
    (None, f"{DIGEST}  /x/microk8s_1.snap", None),
    (MIRROR, DIGEST, None),
    (None, "", "install /x/microk8s_1.snap (10 bytes"),
    (MIRROR, "", "install /x/microk8s_1.snap (10 bytes"),            # the gateway lacks it
    (MIRROR, FROM_GATEWAY, "install /x/microk8s_1.snap from the gateway's registry "
                           "http://192.168.10.2:5001"),
    (MIRROR, f"{'0' * 64}  /x/microk8s_1.snap\n{FROM_GATEWAY}",
     "replace /x/microk8s_1.snap from the gateway's registry"),
    (None, f"{'0' * 64}  /x/microk8s_1.snap", "replace /x/microk8s_1.snap (10 bytes"),
], ids=["direct-has-it", "mirror-has-it", "direct-push", "gateway-lacks-it-push",
        "gateway-pull", "gateway-pull-replaces", "direct-replace"])
def test_artifact_on_the_node(tmp_path: Path, mirror: str | None, out: str,
                              expected: str | None) -> None:
    calls: list[int] = []

    def loader() -> Path:
        calls.append(1)
        return local(tmp_path)

    step = Artifact("/x/microk8s_1.snap", loader, DIGEST, mode="644", mirror=mirror)
    assert (mirror is None) == (MIRROR not in step.facts()["sum"])
    changes = step.plan({"sum": FactResult(0, out)})
    if expected is None:
        assert changes == [] and calls == []
        return
    assert len(changes) == 1 and changes[0].summary.startswith(expected)
    (action,) = changes[0].actions
    if "gateway" in expected:
        assert calls == [], "nothing read locally when the node pulls from the gateway"
        assert action.command == download_command("/x/microk8s_1.snap", MIRROR, DIGEST, "644")
        assert action.stdin is None
    else:
        assert calls == [1] and action.stdin == b"snap bytes"
        assert action.command == upload_command("/x/microk8s_1.snap", DIGEST, "644")


@pytest.mark.parametrize("command", ["upload", "download"])
def test_a_copy_removes_the_temp_file_a_cut_copy_left(tmp_path: Path, command: str) -> None:
    """The fault campaign's k3s trials #03 and #05: an agent cut while its k3s binary was on
    its way kept `/usr/local/bin/k3s.greenroom.XXXXXX` (part of the binary) for ever; the
    next copy of the same file removes it (and nothing else)."""
    target = tmp_path / "d" / "f.snap"
    target.parent.mkdir()
    (target.parent / "f.snap.greenroom.a1B2c3").write_bytes(b"half of a binary")
    (target.parent / "g.snap.greenroom.a1B2c3").write_bytes(b"another file's")
    source = tmp_path / "source"
    source.write_bytes(b"snap bytes")
    script = upload_command(str(target), DIGEST, "644") if command == "upload" else \
        artifacts.download_command(str(target), f"file://{source}", DIGEST, "644")
    done = subprocess.run(["sh", "-c", script], input=b"snap bytes", capture_output=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == b"snap bytes"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.snap",
                                                               "g.snap.greenroom.a1B2c3"]


@pytest.mark.parametrize(("content", "ok"), [(b"snap bytes", True), (b"other bytes", False)],
                         ids=["right-sha256", "wrong-sha256-nothing-replaced"])
def test_upload_command_checks_the_sha256_before_replacing(tmp_path: Path, content: bytes,
                                                           ok: bool) -> None:
    target = tmp_path / "d" / "f.snap"
    target.parent.mkdir()
    target.write_bytes(b"old")
    done = subprocess.run(["sh", "-c", upload_command(str(target), DIGEST, "644")],
                          input=content, capture_output=True, check=False)
    assert (done.returncode == 0) == ok, done.stderr
    assert target.read_bytes() == (content if ok else b"old")
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.snap"]  # no temp file left
    if not ok:
        assert b"nothing was replaced" in done.stderr


def test_blob_and_manifest_steps() -> None:
    blob = BlobPushed("http://r:5001", "greenroom/microk8s-snap", lambda: b"abc", DIGEST, "x")
    assert "/v2/greenroom/microk8s-snap/blobs/sha256:" + DIGEST in blob.facts()["blob"]
    assert blob.plan({"blob": FactResult(0, "")}) == []                    # served already
    assert blob.plan({"blob": FactResult(0, DOWN)}) == []                  # no registry yet
    (push,) = blob.plan({"blob": FactResult(22, "")})
    assert push.actions[0].stdin == b"abc"
    assert f"digest=sha256:{DIGEST}" in push.actions[0].command
    body = manifest({"a.snap": (DIGEST, 10)}, "7", "application/vnd.greenroom.microk8s.file")
    data = json.loads(body)
    assert data["config"]["digest"] == f"sha256:{EMPTY_DIGEST}"
    assert data["layers"] == [{"mediaType": "application/vnd.greenroom.microk8s.file",
                               "digest": f"sha256:{DIGEST}", "size": 10,
                               "annotations": {"org.opencontainers.image.title": "a.snap"}}]
    tagged = ManifestTagged("http://r:5001", "greenroom/microk8s-snap", "1.32-stable-7", body)
    assert tagged.plan({"manifest": FactResult(0, hashlib.sha256(body).hexdigest() + "  -")}) \
        == []
    assert tagged.plan({"manifest": FactResult(0, DOWN)}) == []
    (tag,) = tagged.plan({"manifest": FactResult(0, "e3b0  -")})
    assert tag.summary.startswith("tag greenroom/microk8s-snap:1.32-stable-7")


def test_gateway_steps_order(tmp_path: Path) -> None:
    path = local(tmp_path)
    steps = gateway_steps("http://r:5001", "greenroom/x", "t", "7", "ref",
                          {"b": (DIGEST, lambda: path), "a": (DIGEST, lambda: path)},
                          {"a": 10, "b": 10})
    assert [type(s).__name__ for s in steps] == ["BlobPushed"] * 3 + ["ManifestTagged"]
    assert "empty config" in steps[0].name and " a 7 " in f" {steps[1].name}"
    assert len(gateway_steps("http://r:5001", "greenroom/x", "t", "7", "ref", {}, {},
                             config=False)) == 1


def test_matches_hashes_once_then_trusts_size_and_mtime(tmp_path: Path) -> None:
    path = local(tmp_path)
    assert not matches(path, "0" * 64)
    assert matches(path, DIGEST)
    stamps = json.loads((tmp_path / artifacts.STAMPS).read_text())
    assert stamps[path.name][2] == DIGEST
    path.write_bytes(b"changed!!!")                     # same size, new mtime: hashed again
    os.utime(path, ns=(1, 1))
    assert not matches(path, DIGEST)
    assert not matches(tmp_path / "absent", DIGEST)


# -- the microk8s offline install on top of it ------------------------------------------------

@dataclass
class Ctx:
    inventory: Any
    host: Any
    check: bool = False
    logged: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        self.logged.append(message)


OFFLINE = "cluster: {distribution: microk8s, channel: 1.32/stable, offline: true}\n"


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from runbooks.microk8s import offline
    from runbooks.microk8s.fetch import Fetched

    snap, assertion = tmp_path / "microk8s_7.snap", tmp_path / "microk8s_7.assert"
    snap.write_bytes(b"snap bytes")
    assertion.write_text("type: snap-revision\n")
    got = Fetched("7", {snap.name: snap, assertion.name: assertion},
                  {snap.name: DIGEST, assertion.name: "a" * 64}, "cached")
    monkeypatch.setattr(offline, "pinned_files", lambda *_a, **_k: got)
    return got


@pytest.mark.parametrize(("cluster", "host", "planned"), [
    (OFFLINE, "gw", 4),                               # config blob, snap, assertion, manifest
    (OFFLINE, "m0", 0),                               # not the registry host
    (OFFLINE.replace("offline: true", "offline: false"), "gw", 0),   # from the store
], ids=["gateway", "a-node", "not-offline"])
def test_microk8s_release_plan(pinned: Any, cluster: str, host: str, planned: int) -> None:
    from runbooks.microk8s.offline import gateway_plan

    inv = parse_inventory(BASE + THREE + cluster, "t.yaml")
    plan = gateway_plan(Ctx(inv, inv.hosts[host]))  # type: ignore[arg-type]
    assert len(plan.steps) == planned
    if planned:
        assert plan.steps[-1].name == "Ensure greenroom/microk8s-snap:1.32-stable-7 lists " \
                                      "the files"


@pytest.mark.parametrize("registry", [True, False], ids=["with-registry", "without"])
def test_microk8s_node_files_name_the_gateway(pinned: Any, registry: bool) -> None:
    from runbooks.microk8s.offline import NODE_CACHE, node_steps

    text = BASE + THREE + OFFLINE
    if not registry:
        text = text.replace("registry: {host: gw, port: 5001}\n", "")
    inv = parse_inventory(text, "t.yaml")
    cluster = inv.sections["cluster"]
    got, steps = node_steps(Ctx(inv, inv.hosts["m1"]), cluster)  # type: ignore[arg-type]
    assert got is pinned
    steps = [s for s in steps if isinstance(s, Artifact)]  # each followed by its Stamped
    assert [s.path for s in steps] == [f"{NODE_CACHE}/microk8s_7.snap",  # type: ignore
                                       f"{NODE_CACHE}/microk8s_7.assert"]
    mirrors = [s.mirror for s in steps]  # type: ignore[attr-defined]
    if registry:
        assert mirrors[0] == ("http://192.168.10.2:5001/v2/greenroom/microk8s-snap/blobs/"
                              f"sha256:{DIGEST}")
    else:
        assert mirrors == [None, None]


def test_download_is_atomic_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    source = local(tmp_path)
    target = tmp_path / "cache" / "got.snap"
    artifacts.download(source.as_uri(), target)
    assert target.read_bytes() == b"snap bytes"
    with pytest.raises(artifacts.DownloadError, match="cannot download file:.*absent"):
        artifacts.download((tmp_path / "absent").as_uri(), tmp_path / "cache" / "x.snap")
    assert sorted(p.name for p in target.parent.iterdir()) == ["got.snap"]


@pytest.mark.parametrize(("cluster", "registry", "runs", "ok"), [
    (OFFLINE, True, ["gw"], True),
    (OFFLINE, True, ["gw"], False),
    (OFFLINE, False, [], True),
    (OFFLINE.replace("offline: true", "offline: false"), True, [], True),
], ids=["offline-with-registry", "gateway-failed", "no-registry", "from-the-store"])
def test_inv_microk8s_runs_the_gateway_first_only_when_it_serves_the_snap(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cluster: str, registry: bool,
        runs: list[str], ok: bool) -> None:
    from invoke import Context

    from runbooks.core import runner
    from runbooks.microk8s import tasks

    text = BASE + THREE + cluster
    if not registry:
        text = text.replace("registry: {host: gw, port: 5001}\n", "")
    path = tmp_path / "site.yaml"
    path.write_text(text)
    ran: list[str] = []

    @dataclass
    class Result:
        ok: bool

    def fake(runbook: Any, inv: Any, hosts: list[Any], **_kw: Any) -> Result:
        assert runbook.name == "microk8s.release"
        ran.extend(h.name for h in hosts)
        return Result(ok)

    monkeypatch.setattr(runner, "run_runbook", fake)
    assert tasks._gateway_first(Context(), str(path), False, False) is ok
    assert ran == runs


@pytest.fixture()
def registry_files(tmp_path: Path):
    """A loopback HTTP server over tmp_path/www (HEAD and GET of plain files) and a PATH
    whose curl counts its starts before running the real one."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    (www / "v2" / "x" / "blobs").mkdir(parents=True)
    (www / "v2" / "x" / "manifests").mkdir()
    (www / "v2" / "index.html").write_text("{}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(f"#!/bin/sh\necho x >> {tmp_path}/curls\n"
                                  f"exec {shutil.which('curl')} \"$@\"\n")
    (bin_dir / "curl").chmod(0o755)
    yield www, f"http://127.0.0.1:{server.server_address[1]}", bin_dir, tmp_path / "curls"
    server.shutdown()


def test_gateway_steps_read_the_registry_with_one_command(registry_files) -> None:
    """Every blob's HEAD and the manifest's sha256 are one fact all of gateway_steps' steps
    ask (a batch runs it once: two curls), judged as each step's own read was."""
    www, base, bin_dir, curls = registry_files
    other = "b" * 64
    steps = gateway_steps(base, "x", "t", "7", "ref",
                          {"a": (DIGEST, lambda: b"a"), "b": (other, lambda: b"b")},
                          {"a": 1, "b": 1})
    tagged = steps[-1]
    (www / "v2" / "x" / "blobs" / f"sha256:{EMPTY_DIGEST}").write_bytes(artifacts.EMPTY)
    (www / "v2" / "x" / "blobs" / f"sha256:{DIGEST}").write_bytes(b"a")  # b's is missing
    body = tagged.body  # type: ignore[attr-defined]
    (www / "v2" / "x" / "manifests" / "ref").write_bytes(body)
    commands = {f"{n}|{k}": c for n, s in enumerate(steps) for k, c in s.facts().items()}
    assert len(set(commands.values())) == 1
    script, parse = prepare(commands)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          check=True)
    facts = parse(done.stdout)
    assert len(curls.read_text().splitlines()) == 2
    planned = [s.plan({k.split("|")[1]: v for k, v in facts.items()
                       if k.startswith(f"{n}|")}) for n, s in enumerate(steps)]
    assert [len(p) for p in planned] == [0, 0, 1, 0]  # config, a served; b pushed; tagged
    assert planned[2][0].summary.startswith("push 1 bytes")
    (www / "v2" / "x" / "manifests" / "ref").write_bytes(b"{}")  # another manifest
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          check=True)
    facts = parse(done.stdout)
    (tag,) = tagged.plan({"manifest": facts[f"{len(steps) - 1}|manifest"]})
    assert tag.summary.startswith("tag x:ref")


def test_gateway_steps_with_the_registry_down_plan_nothing() -> None:
    steps = gateway_steps("http://r:5001", "x", "t", "7", "ref", {"a": (DIGEST, lambda: b"")},
                          {"a": 1})
    assert all(s.plan({k: FactResult(0, DOWN + "\n") for k in s.facts()}) == []
               for s in steps)
