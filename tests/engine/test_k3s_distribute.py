"""The k3s release files through the gateway's registry, with Debian's real docker-registry
on loopback and the very shell commands the steps send (run by sh here, over SSH on a site).

Pushed as blobs (the registry refuses bytes that are not the digest), tagged by an OCI
manifest, pulled by a node with the sha256 checked there (a wrong one replaces nothing), and
the node's fact that decides between the gateway and the direct push.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.common import artifacts
from runbooks.common.artifacts import FROM_GATEWAY, Artifact, download_command
from runbooks.core.facts import FactResult
from runbooks.k3s import distribute

REPO = distribute.REPOSITORY

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None or
                                shutil.which("curl") is None,
                                reason="needs docker-registry and curl")

DATA = b"#!/bin/sh\necho k3s double\n" * 100
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    from tests.registry.regkit import Registry

    reg = Registry(tmp_path / "registry")
    try:
        yield f"http://{reg.host}"
    finally:
        reg.stop()


def sh(command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=60)


def served(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def push(base: str, data: bytes, digest: str) -> subprocess.CompletedProcess[bytes]:
    return sh(artifacts.push_blob_command(base, REPO, digest), data)


def test_blob_pushed_once_then_served_by_digest(registry: str) -> None:
    step = artifacts.BlobPushed(registry, REPO, lambda: DATA, DIGEST, "k3s-arm64 v1")
    probe = sh(step.facts()["blob"])
    changes = step.plan({"blob": FactResult(probe.returncode, "")})
    assert len(changes) == 1 and changes[0].summary.startswith(f"push {len(DATA)} bytes")
    action = changes[0].actions[0]
    done = sh(action.command, action.stdin)  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    assert served(distribute.blob_url(registry, DIGEST)) == DATA
    again = sh(step.facts()["blob"])
    assert step.plan({"blob": FactResult(again.returncode, "")}) == []


def test_registry_refuses_bytes_that_are_not_the_pinned_digest(registry: str) -> None:
    done = push(registry, DATA + b"tampered\n", DIGEST)
    assert done.returncode != 0
    assert sh(f"curl -sfI {distribute.blob_url(registry, DIGEST)}").returncode != 0


def test_manifest_lists_the_files_and_is_tagged_once(registry: str) -> None:
    assert push(registry, artifacts.EMPTY, artifacts.EMPTY_DIGEST).returncode == 0
    assert push(registry, DATA, DIGEST).returncode == 0
    body = artifacts.manifest({"k3s-arm64": (DIGEST, len(DATA))}, "v1.34.3+k3s1",
                              distribute.FILE_TYPE)
    step = artifacts.ManifestTagged(registry, REPO, distribute.tag("v1.34.3+k3s1", "arm64"),
                                    body)
    assert step.reference == "v1.34.3-k3s1-arm64"

    def plan() -> list:
        fact = sh(step.facts()["manifest"])
        return step.plan({"manifest": FactResult(fact.returncode, fact.stdout.decode())})

    changes = plan()
    assert len(changes) == 1
    action = changes[0].actions[0]
    done = sh(action.command, (action.stdin or "").encode())
    assert done.returncode == 0, done.stderr
    assert plan() == []


@pytest.mark.parametrize("digest, ok", [(DIGEST, True), ("0" * 64, False)],
                         ids=["pinned-digest-installs", "other-digest-replaces-nothing"])
def test_node_download_checks_the_sha256_itself(registry: str, tmp_path: Path, digest: str,
                                                ok: bool) -> None:
    assert push(registry, DATA, DIGEST).returncode == 0
    target = tmp_path / "bin" / "k3s"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    done = sh(download_command(str(target), distribute.blob_url(registry, DIGEST), digest,
                               "755"))
    assert (done.returncode == 0) is ok, done.stderr
    assert target.read_bytes() == (DATA if ok else b"old\n")
    assert [p.name for p in target.parent.iterdir()] == ["k3s"]  # no temp file left
    if not ok:
        assert b"expected " + b"0" * 64 in done.stderr


@pytest.mark.parametrize("have, on_gateway, expect", [
    ("none", True, "from the gateway"),
    ("none", False, "bytes"),                 # no blob there: pushed over SSH
    ("old", True, "replace"),
    ("pinned", True, None),                   # converged: nothing, and no question asked
], ids=["missing-from-gateway", "missing-direct-push", "old-from-gateway", "converged"])
def test_node_fact_picks_the_gateway_or_the_direct_push(registry: str, tmp_path: Path,
                                                        have: str, on_gateway: bool,
                                                        expect: str | None) -> None:
    if on_gateway:
        assert push(registry, DATA, DIGEST).returncode == 0
    target = tmp_path / "k3s"
    if have != "none":
        target.write_bytes(DATA if have == "pinned" else b"old\n")
    local = tmp_path / "cached"
    local.write_bytes(DATA)
    step = Artifact(str(target), lambda: local, DIGEST,
                    mirror=distribute.blob_url(registry, DIGEST))
    fact = sh(step.facts()["sum"])
    changes = step.plan({"sum": FactResult(fact.returncode, fact.stdout.decode())})
    if expect is None:
        assert changes == [] and FROM_GATEWAY not in fact.stdout.decode()
        return
    assert len(changes) == 1 and expect in changes[0].summary, changes[0].summary
    action = changes[0].actions[0]
    stdin = action.stdin if isinstance(action.stdin, bytes) else b""
    done = sh(action.command, stdin)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == DATA


@pytest.mark.parametrize("where", ["nothing-listens", "address-not-on-this-host"])
def test_a_registry_that_does_not_answer_is_no_failure(tmp_path: Path, where: str) -> None:
    from tests.registry.regkit import free_port

    # before `inv dell-gateway` the VLAN address is not on the gateway: never connected to
    address = "127.0.0.1" if where == "nothing-listens" else "192.0.2.1"
    base = f"http://{address}:{free_port()}"
    said: list[str] = []
    blob = artifacts.BlobPushed(base, REPO, lambda: DATA, DIGEST, "k3s-arm64 v1", log=said.append)
    fact = sh(blob.facts()["blob"])
    assert blob.plan({"blob": FactResult(fact.returncode, fact.stdout.decode())}) == []
    assert said and "does not answer" in said[0]
    assert artifacts.DOWN in fact.stdout.decode()
    tagged = artifacts.ManifestTagged(base, REPO, "v1-arm64", b"{}")
    fact = sh(tagged.facts()["manifest"])
    assert tagged.plan({"manifest": FactResult(fact.returncode, fact.stdout.decode())}) == []
