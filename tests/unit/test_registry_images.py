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
    ("images:\n  - a/b:1\n  - {ref: c/d:1, as: 'a/b:1'}\n",
     r"docker.io/a/b:1 \(images\[0\]\) and docker.io/c/d:1 \(images\[1\]\) would both be a/b:1"),
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


# -- a user's own list (--images FILE): two upstream images on one local name ----------------

@pytest.mark.parametrize("name, text, first, second, local", [
    pytest.param("mine.txt", "docker.io/foo/bar:1\nquay.io/foo/bar:1\n",
                 "docker.io/foo/bar:1 (line 1)", "quay.io/foo/bar:1 (line 2)", "foo/bar:1",
                 id="text-two-registries"),
    pytest.param("mine.txt", "# mine\nnginx:1.25\n\nghcr.io/library/nginx:1.25\n",
                 "docker.io/library/nginx:1.25 (line 2)", "ghcr.io/library/nginx:1.25 (line 4)",
                 "library/nginx:1.25", id="text-docker-hub-short-name"),
    pytest.param("mine.txt", "registry.k8s.io/sig/a/b/c:v1\ngcr.io/sig/a/b/c:v1\n",
                 "registry.k8s.io/sig/a/b/c:v1 (line 1)", "gcr.io/sig/a/b/c:v1 (line 2)",
                 "sig/a/b/c:v1", id="text-deep-names"),
    pytest.param("mine.yaml", "rewrite: ['a=b']\nimages:\n  - quay.io/a/x:1\n  - ghcr.io/b/x:1\n",
                 "quay.io/a/x:1 (images[0])", "ghcr.io/b/x:1 (images[1])", "b/x:1",
                 id="yaml-by-a-rewrite-rule"),
    pytest.param("mine.yaml", "images:\n  - quay.io/x/y:1\n  - {ref: ghcr.io/z/w:2, as: 'x/y:1'}\n",
                 "quay.io/x/y:1 (images[0])", "ghcr.io/z/w:2 (images[1])", "x/y:1",
                 id="yaml-by-as"),
])
def test_users_list_two_images_on_one_local_name_refused_both_named(
        tmp_path, name, text, first, second, local):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ImageListError) as caught:
        load_image_list(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert f"{first} and {second} would both be {local} in the local registry" in message


@pytest.mark.parametrize("text, locals_", [
    pytest.param("nginx:1.25\ndocker.io/library/nginx:1.25\n", ["library/nginx:1.25"],
                 id="one-image-spelt-twice"),
    pytest.param("docker.io/foo/bar:1\nquay.io/foo/bar:2\n", ["foo/bar:1", "foo/bar:2"],
                 id="one-repository-other-tags"),
])
def test_users_list_accepted(tmp_path, text, locals_):
    path = tmp_path / "mine.txt"
    path.write_text(text)
    assert [s.target for s in load_image_list(path).images] == locals_


def test_load_images_refuses_a_clashing_user_list_before_any_request(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "mine.txt"
    path.write_text("docker.io/foo/bar:1\nquay.io/foo/bar:1\n")
    done = subprocess.run([sys.executable, "-m", "runbooks.registry", "load-images",
                           "--images", str(path), "--to", "127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "docker.io/foo/bar:1 (line 1) and quay.io/foo/bar:1 (line 2)" in done.stderr
    assert done.stdout == "" and list(tmp_path.iterdir()) == [path]      # no lock written
