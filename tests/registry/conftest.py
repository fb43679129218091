"""Fixtures: a source registry behind htpasswd basic auth with synthetic images, fresh targets."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import pytest

from .regkit import Builder, Registry, digest_of, htpasswd_line, random_bytes

USER, PASSWORD = "puller", "s3cret-Pa55"


def _need_tools() -> None:
    if shutil.which("docker-registry") is None:
        subprocess.run(["apt-get", "install", "-y", "docker-registry", "skopeo"], check=False,
                       capture_output=True)
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed and apt-get could not install it")


@dataclass
class SourceSet:
    """The source registry and what was pushed into it."""

    registry: Registry
    digests: dict           # name -> {"index": digest, "linux/amd64": ..., "linux/arm64": ...}
    base: str               # the shared base layer's digest
    big: str                # a multi-chunk layer's digest (in kube/apiserver arm64)

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> SourceSet:
    _need_tools()
    reg = Registry(tmp_path_factory.mktemp("source"), htpasswd_line(USER, PASSWORD))
    try:
        b = Builder(reg.host, (USER, PASSWORD))
        base = random_bytes(300_000, 1)
        big = random_bytes(2_600_000, 2)
        digests: dict[str, dict] = {}

        def multi(repo, tag, layers_amd, layers_arm, oci=False, extra=()):
            amd = b.image(repo, "amd64", layers_amd, oci=oci)
            arm = b.image(repo, "arm64", layers_arm, oci=oci, variant="v8" if oci else None)
            idx = b.index(repo, tag, [amd, arm, *extra], oci=oci)
            digests[f"{repo}:{tag}"] = {"index": idx["digest"], "linux/amd64": amd["digest"],
                                        "linux/arm64": arm["digest"]}

        multi("kube/apiserver", "v1", [base, random_bytes(50_000, 3)], [base, big])
        multi("kube/proxy", "v1", [base, random_bytes(40_000, 4)],
              [base, random_bytes(60_000, 5)])
        att = b.image("coredns/coredns", "unknown", [random_bytes(1000, 6)], oci=True)
        att["platform"] = {"os": "unknown", "architecture": "unknown"}
        multi("coredns/coredns", "v1.8.0", [base, random_bytes(30_000, 7)],
              [base, random_bytes(70_000, 8)], oci=True, extra=[att])
        single = b.image("deep/nested/single", "arm64", [base, random_bytes(20_000, 9)],
                         tag="1")
        digests["deep/nested/single:1"] = {"index": single["digest"],
                                           "linux/arm64": single["digest"]}
        amd_only = b.image("amd/only", "amd64", [random_bytes(10_000, 10)], tag="1")
        digests["amd/only:1"] = {"index": amd_only["digest"]}
        yield SourceSet(reg, digests, digest_of(base), digest_of(big))
    finally:
        reg.stop()


@pytest.fixture
def target(tmp_path):
    reg = Registry(tmp_path / "target")
    yield reg
    reg.stop()


@pytest.fixture
def creds_env(monkeypatch, tmp_path, source):
    """Credentials for the source in the environment; no Docker config of the machine's."""
    from runbooks.registry.auth import env_name

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv(env_name(source.host), f"{USER}:{PASSWORD}")
    return env_name(source.host)
