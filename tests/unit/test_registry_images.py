"""Pure tests: image references, image list files, rewrite rules."""

from __future__ import annotations

import pytest

from runbooks.registry.images import (
    ImageListError,
    load_image_list,
    parse_image_list,
    parse_ref,
    parse_rewrite,
)
from runbooks.registry.targets import DEFAULT_IMAGES, check_hostport, is_loopback

REFS = [
    ("registry.k8s.io/pause:3.6", ("registry.k8s.io", "pause", "3.6", None)),
    ("registry.k8s.io/coredns/coredns:v1.8.0",
     ("registry.k8s.io", "coredns/coredns", "v1.8.0", None)),
    ("rancher/mirrored-flannelcni-flannel:v0.19.2",
     ("docker.io", "rancher/mirrored-flannelcni-flannel", "v0.19.2", None)),
    ("busybox", ("docker.io", "library/busybox", "latest", None)),
    ("127.0.0.1:5000/a/b", ("127.0.0.1:5000", "a/b", "latest", None)),
    ("localhost/x:1", ("localhost", "x", "1", None)),
    ("ghcr.io/kube-vip/kube-vip@sha256:" + "a" * 64,
     ("ghcr.io", "kube-vip/kube-vip", None, "sha256:" + "a" * 64)),
]


@pytest.mark.parametrize("text,want", REFS, ids=[r[0] for r in REFS])
def test_parse_ref(text, want):
    ref = parse_ref(text)
    assert (ref.host, ref.repo, ref.tag, ref.digest) == want


def test_docker_hub_api_host():
    assert parse_ref("rancher/x:1").api_host == "registry-1.docker.io"
    assert parse_ref("ghcr.io/x/y:1").api_host == "ghcr.io"


@pytest.mark.parametrize("text", ["", "UPPER/case:1", "a b", "x@sha256:123", "x:bad/tag:"],
                         ids=["empty", "upper", "space", "short-digest", "bad-tag"])
def test_parse_ref_rejects(text):
    with pytest.raises(ImageListError):
        parse_ref(text)


RULES = [
    ("coredns/coredns=coredns", "coredns/coredns", "coredns"),
    ("coredns/coredns=coredns", "coredns/coredns-extra", None),
    ("rancher=", "rancher/flannel", "flannel"),
    ("kube-vip=mirror/kube-vip", "kube-vip/kube-vip", "mirror/kube-vip/kube-vip"),
]


@pytest.mark.parametrize("rule,repo,want", RULES, ids=["exact", "no-partial", "strip", "nest"])
def test_rewrite(rule, repo, want):
    assert parse_rewrite(rule).apply(repo) == want


@pytest.mark.parametrize("rule", ["noequals", "=x", "UP=x"])
def test_rewrite_rejects(rule):
    with pytest.raises(ImageListError, match="rewrite rule"):
        parse_rewrite(rule)


def test_plain_text_list_with_comments():
    lst = parse_image_list("# c\nregistry.k8s.io/pause:3.6  # sandbox\n\nbusybox:1\n")
    assert [s.target for s in lst.images] == ["pause:3.6", "library/busybox:1"]
    assert lst.platforms == ()


def test_yaml_list_with_rewrite_and_as():
    text = ("platforms: [linux/arm64]\nrewrite: ['coredns/coredns=coredns']\nimages:\n"
            "  - ref: registry.k8s.io/coredns/coredns:v1.8.0\n    was: k8s.gcr.io/x:1\n"
            "  - {ref: ghcr.io/kube-vip/kube-vip:v0.4.0, as: 'kube-vip:v0.4.0'}\n"
            "  - registry.k8s.io/pause:3.6\n")
    lst = parse_image_list(text)
    assert [s.target for s in lst.images] == ["coredns:v1.8.0", "kube-vip:v0.4.0", "pause:3.6"]
    assert lst.platforms == ("linux/arm64",)


@pytest.mark.parametrize("text,msg", [
    ("images: {a: 1}\n", "'images:' list"),
    ("images:\n  - {ref: a/b:1, color: red}\n", "unknown key"),
    ("images:\n  - 42\n", r"images\[0\] must be"),
    ("images: []\nfoo: 1\n", "unknown top-level"),
    ("images:\n  - a/b:1\n  - {ref: c/d:1, as: 'a/b:1'}\n", "both map to a/b:1"),
    ("images: [\n", "not valid YAML"),
    ("# nothing\n", "empty"),
], ids=["not-list", "unknown-key", "not-string", "unknown-top", "clash", "bad-yaml", "empty"])
def test_image_list_errors_name_file_and_key(text, msg, tmp_path):
    path = tmp_path / "list.yaml"
    with pytest.raises(ImageListError, match=msg) as exc:
        parse_image_list(text, path)
    assert str(path) in str(exc.value)


def test_shipped_list_is_the_seeds_16_images():
    lst = load_image_list(DEFAULT_IMAGES)
    assert len(lst.images) == 16
    assert not [s for s in lst.images if s.source.host == "k8s.gcr.io"]
    assert "coredns/coredns:v1.8.0" in [s.target for s in lst.images]


@pytest.mark.parametrize("host,want", [("127.0.0.1:5000", True), ("localhost:5000", True),
                                       ("[::1]:5000", True), ("192.168.10.2:5001", False),
                                       ("ghcr.io", False)])
def test_loopback(host, want):
    assert is_loopback(host) is want


def test_hostport_needs_port():
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        check_hostport("registry", "--to")
