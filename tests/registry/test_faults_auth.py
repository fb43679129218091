"""Retries, corrupt blobs and the Bearer token flow, through a proxy of our own in front of the
real source registry."""

from __future__ import annotations

import io

import pytest
import requests

from runbooks.registry.run import Options, load_images

from .conftest import PASSWORD, USER
from .regkit import Fault, Proxy, ProxyState
from .test_load_images import GOOD, head, write_list


@pytest.fixture
def proxy(source):
    px = Proxy(ProxyState(upstream=source.host, upstream_auth=(USER, PASSWORD)))
    yield px
    px.stop()


def run_via(tmp_path, proxy, target, names=GOOD, **kw):
    out = io.StringIO()
    images = write_list(tmp_path, proxy.host, names)
    summary = load_images(Options(images=str(images), to=target.host, backoff=0.01, **kw), out)
    return summary, out.getvalue()


def test_retries_cut_connection_503_and_429(tmp_path, source, target, proxy, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    st = proxy.state
    st.faults += [
        Fault("GET", f"/blobs/{source.big}", "cut"),                   # dies mid-blob
        Fault("GET", "/manifests/v1.8.0", "status", 503, retry_after="0"),
        Fault("GET", f"/blobs/{source.base}", "status", 429, retry_after="1"),
    ]
    summary, _ = run_via(tmp_path, proxy, target)
    assert (summary.copied, summary.failed) == (4, [])
    assert [f.hits for f in st.faults] == [1, 1, 1]
    assert sum(1 for m, p in st.log if m == "GET" and source.big in p) == 2
    for name in GOOD:
        repo, tag = name.rsplit(":", 1)
        assert head(target.host, repo, tag) == source.digests[name]["linux/arm64"]
    r = requests.get(f"http://{target.host}/v2/kube/apiserver/blobs/{source.big}")
    assert r.status_code == 200 and len(r.content) == 2_600_000


def test_corrupt_blob_fails_only_its_images(tmp_path, source, target, proxy, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    proxy.state.faults.append(Fault("GET", f"/blobs/{source.big}", "corrupt", times=100))
    summary, _ = run_via(tmp_path, proxy, target)
    assert summary.copied == 3
    assert [n for n, _ in summary.failed] == [f"{proxy.host}/kube/apiserver:v1"]
    why = summary.failed[0][1]
    assert f"blob {source.big}" in why and "corrupt" in why
    assert head(target.host, "kube/apiserver", "v1") is None
    r = requests.head(f"http://{target.host}/v2/kube/apiserver/blobs/{source.big}")
    assert r.status_code == 404


def test_persistent_503_gives_up_with_a_clear_message(tmp_path, source, target, proxy,
                                                      monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    proxy.state.faults.append(Fault("GET", "/manifests/1", "status", 503, times=100))
    summary, _ = run_via(tmp_path, proxy, target, names=["deep/nested/single:1", "kube/proxy:v1"],
                         attempts=3)
    assert summary.copied == 1
    assert "503" in summary.failed[0][1] and "deep/nested/single" in summary.failed[0][1]
    assert proxy.state.faults[0].hits == 3


@pytest.fixture
def token_proxy(source):
    """The source behind a Bearer token endpoint of our own (pull is anonymous, push not)."""
    px = Proxy(ProxyState(upstream=source.host, upstream_auth=(USER, PASSWORD),
                          token_users={"alice": "tok-pass-123"}))
    yield px
    px.stop()


def test_bearer_token_flow_with_credentials(tmp_path, source, target, token_proxy, monkeypatch):
    from runbooks.registry.auth import env_name

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv(env_name(token_proxy.host), "alice:tok-pass-123")
    summary, out = run_via(tmp_path, token_proxy, target, names=GOOD[:2])
    assert (summary.copied, summary.failed) == (2, [])
    reqs = token_proxy.state.token_requests
    assert reqs and all(r["user"] == "alice" and r["service"] == "test-registry" for r in reqs)
    assert {"repository:kube/apiserver:pull", "repository:kube/proxy:pull"} <= \
        {s for r in reqs for s in r["scope"]}
    assert len(reqs) == 2                    # one token per repository, then reused
    assert "tok-pass-123" not in out


def test_bearer_token_flow_anonymous(tmp_path, source, target, token_proxy, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    summary, _ = run_via(tmp_path, token_proxy, target, names=["deep/nested/single:1"])
    assert summary.copied == 1
    assert [r["user"] for r in token_proxy.state.token_requests] == [None]


def test_wrong_token_credentials_are_not_printed(tmp_path, source, target, token_proxy,
                                                 monkeypatch):
    from runbooks.registry.auth import env_name

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv(env_name(token_proxy.host), "alice:WRONG-secret-777")
    summary, out = run_via(tmp_path, token_proxy, target, names=["kube/proxy:v1"])
    assert len(summary.failed) == 1
    why = summary.failed[0][1]
    assert "refused" in why and "alice" in why and "WRONG-secret-777" not in why + out


def test_basic_auth_without_credentials_says_how_to_log_in(tmp_path, source, target,
                                                           monkeypatch):
    from runbooks.registry.auth import env_name

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv(env_name(source.host), raising=False)
    images = write_list(tmp_path, source.host, ["kube/proxy:v1"])
    summary = load_images(Options(images=str(images), to=target.host), io.StringIO())
    why = summary.failed[0][1]
    assert "requires a login" in why and env_name(source.host) in why


def test_docker_config_credentials(tmp_path, source, target, monkeypatch):
    import base64
    import json

    from runbooks.registry.auth import env_name

    monkeypatch.delenv(env_name(source.host), raising=False)
    cfg = tmp_path / "dc"
    cfg.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {source.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    images = write_list(tmp_path, source.host, ["kube/proxy:v1"])
    summary = load_images(Options(images=str(images), to=target.host), io.StringIO())
    assert summary.copied == 1
