"""Pure tests: credentials lookup, challenge parsing, token answers, Retry-After."""

from __future__ import annotations

import base64
import json

import pytest

from runbooks.registry.auth import (
    AuthError,
    env_name,
    find_credentials,
    parse_challenge,
    token_from_response,
)


def test_env_name():
    assert env_name("ghcr.io") == "GREENROOM_REGISTRY_AUTH_GHCR_IO"
    assert env_name("127.0.0.1:5000") == "GREENROOM_REGISTRY_AUTH_127_0_0_1_5000"


def test_env_credentials_win_and_never_show_secret(tmp_path):
    env = {"GREENROOM_REGISTRY_AUTH_GHCR_IO": "bob:pa:ss", "DOCKER_CONFIG": str(tmp_path)}
    creds = find_credentials("ghcr.io", env)
    assert (creds.user, creds.secret) == ("bob", "pa:ss")
    assert "pa:ss" not in repr(creds) + str(creds)


def test_docker_config_auths_and_hub_alias(tmp_path):
    auth = base64.b64encode(b"alice:tok").decode()
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    creds = find_credentials("registry-1.docker.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert (creds.user, creds.secret) == ("alice", "tok")
    assert find_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path)}) is None


@pytest.mark.parametrize("content,msg", [("{not json", "cannot read"),
                                         ('{"auths": {"h": {"auth": "***"}}}', "base64")],
                         ids=["bad-json", "bad-base64"])
def test_bad_docker_config(tmp_path, content, msg):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(AuthError, match=msg):
        find_credentials("h", {"DOCKER_CONFIG": str(tmp_path)})


def test_bad_env_value_is_not_echoed():
    with pytest.raises(AuthError) as exc:
        find_credentials("h", {"GREENROOM_REGISTRY_AUTH_H": "nocolon-secret"})
    assert "nocolon-secret" not in str(exc.value)


def test_parse_bearer_challenge():
    ch = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                         'scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "reg",
                         "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    assert parse_challenge("") is None


@pytest.mark.parametrize("doc,want", [({"token": "t", "expires_in": 300}, ("t", 300)),
                                      ({"access_token": "a"}, ("a", 60)),
                                      ({"token": "t", "expires_in": 1}, ("t", 10))],
                         ids=["token", "access_token", "min-lifetime"])
def test_token_from_response(doc, want):
    assert token_from_response(doc) == want


def test_token_missing():
    with pytest.raises(AuthError, match="no token"):
        token_from_response({"nope": 1})


def test_retry_after_header_and_backoff():
    import requests

    from runbooks.registry.client import retry_after

    resp = requests.Response()
    resp.headers["Retry-After"] = "3"
    assert retry_after(resp, 0, 0.25) == 3.0
    assert 0.5 <= retry_after(None, 2, 0.25) <= 1.0
