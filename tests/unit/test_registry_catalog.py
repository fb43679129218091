"""Pure tests: which images a site needs, per runbook, for the versions its inventory pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.registry.catalog import site_images, upstream_registries
from runbooks.registry.images import ImageListError
from runbooks.registry.targets import DEFAULT_IMAGES

BASE = """\
platforms: [linux/arm64]
images:
  - registry.k8s.io/pause:3.6
"""

K3S = """\
section: cluster
when: {cluster.distribution: k3s}
defaults: {cluster.distribution: k3s, cluster.disable: [traefik]}
version: cluster.version
versions:
  v1.30.1+k3s1:
    - docker.io/rancher/mirrored-pause:3.6
    - {ref: docker.io/rancher/mirrored-library-traefik:2.10.7, unless: {cluster.disable: traefik}}
  "v1.31.*":
    - docker.io/rancher/mirrored-pause:3.7
images:
  - {ref: ghcr.io/kube-vip/kube-vip:v0.8.9, when: {network.vip: "*"}}
"""

METALLB = """\
section: metallb
defaults: {metallb.mode: l2}
version: metallb.version
versions:
  v0.14.9:
    - quay.io/metallb/controller:v0.14.9
    - {ref: quay.io/frrouting/frr:9.1.0, when: {metallb.mode: [bgp]}}
"""


def make(tmp_path: Path, **runbooks: str) -> Path:
    base = tmp_path / "images.yaml"
    base.write_text(BASE)
    (tmp_path / "images.d").mkdir()
    for name, text in runbooks.items():
        (tmp_path / "images.d" / f"{name}.yaml").write_text(text)
    return base


def refs(base: Path, inventory: dict, runbooks: tuple[str, ...] = ()) -> list[str]:
    return [str(s.source) for s in site_images(base, lambda: inventory, runbooks).listed.images]


PAUSE = "registry.k8s.io/pause:3.6"
K_PAUSE = "docker.io/rancher/mirrored-pause:3.6"
TRAEFIK = "docker.io/rancher/mirrored-library-traefik:2.10.7"
VIP = "ghcr.io/kube-vip/kube-vip:v0.8.9"
CASES = [
    ("no-cluster-section", {}, [PAUSE]),
    ("k3s-pinned-default-disable", {"cluster": {"version": "v1.30.1+k3s1"}}, [PAUSE, K_PAUSE]),
    ("traefik-kept-when-not-disabled",
     {"cluster": {"version": "v1.30.1+k3s1", "disable": ["servicelb"]}},
     [PAUSE, K_PAUSE, TRAEFIK]),
    ("vip-adds-kube-vip", {"cluster": {"version": "v1.30.1+k3s1"},
                           "network": {"vip": "192.168.10.25"}}, [PAUSE, K_PAUSE, VIP]),
    ("glob-version", {"cluster": {"version": "v1.31.4+k3s1"}},
     [PAUSE, "docker.io/rancher/mirrored-pause:3.7"]),
    ("other-distribution", {"cluster": {"distribution": "microk8s", "version": "1.32"}},
     [PAUSE]),
    ("metallb-l2-default", {"metallb": {"version": "v0.14.9"}},
     [PAUSE, "quay.io/metallb/controller:v0.14.9"]),
    ("metallb-bgp-adds-frr", {"metallb": {"version": "v0.14.9", "mode": "bgp"}},
     [PAUSE, "quay.io/metallb/controller:v0.14.9", "quay.io/frrouting/frr:9.1.0"]),
]


@pytest.mark.parametrize("inventory,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_selects_per_inventory(tmp_path, inventory, want):
    base = make(tmp_path, k3s=K3S, metallb=METALLB)
    assert refs(base, inventory) == want


def test_runbook_option_narrows(tmp_path):
    base = make(tmp_path, k3s=K3S, metallb=METALLB)
    inv = {"cluster": {"version": "v1.30.1+k3s1"}, "metallb": {"version": "v0.14.9"}}
    assert refs(base, inv, ("k3s",)) == [K_PAUSE]
    assert refs(base, inv, ("cluster-api", "metallb")) == [
        PAUSE, "quay.io/metallb/controller:v0.14.9"]
    with pytest.raises(ImageListError, match="unknown runbook.*k3sx.*cluster-api, k3s, metallb"):
        refs(base, inv, ("k3sx",))


def test_describe_says_why_a_runbook_needs_nothing(tmp_path):
    base = make(tmp_path, k3s=K3S, metallb=METALLB)
    site = site_images(base, lambda: {"metallb": {"version": "v0.14.9"}})
    assert site.listed.note == ("cluster-api: 1; k3s: none (no 'cluster:' section in the "
                                "inventory); metallb: 1 (v0.14.9)")
    assert site.listed.origin["quay.io/metallb/controller:v0.14.9"] == "metallb"


def test_inventory_read_only_when_runbook_lists_exist(tmp_path):
    base = tmp_path / "images.yaml"
    base.write_text(BASE)

    def boom() -> dict:
        raise AssertionError("inventory read")

    assert [str(s.source) for s in site_images(base, boom).listed.images] == [PAUSE]


ERRORS = [
    ("version-not-listed", K3S, {"cluster": {"version": "v1.29.0+k3s1"}},
     r"k3s.yaml: no images listed for version v1.29.0\+k3s1 \(listed: v1.30.1\+k3s1, v1.31.\*\)"),
    ("version-not-pinned", K3S, {"cluster": {}},
     "k3s.yaml: the inventory does not set cluster.version"),
    ("unknown-file-key", "section: cluster\nimagez: []\n", {"cluster": {}},
     r"unknown key\(s\) \['imagez'\]"),
    ("unknown-entry-key", "section: cluster\nimages: [{ref: a/b:1, whenn: {}}]\n",
     {"cluster": {}}, r"k3s images\[0\]: unknown key\(s\) \['whenn'\]"),
    ("no-section", "images: [a/b:1]\n", {}, "'section' must name the inventory section"),
    ("bad-ref", "section: cluster\nimages: [A/B:1]\n", {"cluster": {}},
     r"k3s images\[0\]: bad image reference"),
    ("bad-when", "section: cluster\nimages: [{ref: a/b:1, when: [x]}]\n", {"cluster": {}},
     "'when' must map inventory keys"),
]


@pytest.mark.parametrize("text,inventory,message", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_file_and_key(tmp_path, text, inventory, message):
    base = make(tmp_path, k3s=text)
    with pytest.raises(ImageListError, match=message):
        refs(base, inventory)


def test_two_upstreams_on_one_local_name_refused_with_both_named(tmp_path):
    other = "section: metallb\nimages: [docker.io/metallb/speaker:v0.14.9]\n"
    base = make(tmp_path, a="section: metallb\nimages: [quay.io/metallb/speaker:v0.14.9]\n",
                b=other)
    with pytest.raises(ImageListError) as err:
        refs(base, {"metallb": {}})
    text = str(err.value)
    assert "quay.io/metallb/speaker:v0.14.9" in text and "a.yaml" in text
    assert "docker.io/metallb/speaker:v0.14.9" in text and "b.yaml" in text
    assert "metallb/speaker:v0.14.9 in the local registry" in text


def test_same_image_from_two_runbooks_listed_once(tmp_path):
    base = make(tmp_path, a=f"section: cluster\nimages: [{PAUSE}]\n")
    assert refs(base, {"cluster": {}}) == [PAUSE]


def test_repository_lists_cover_every_upstream_registry():
    """The shipped lists parse, and a full site needs the four upstream registries."""
    inventory = {"network": {"vip": "192.168.10.25"},
                 "cluster": {"distribution": "k3s", "version": "v1.34.3+k3s1"},
                 "metallb": {"version": "v0.14.9", "mode": "bgp"}}
    site = site_images(Path(DEFAULT_IMAGES), lambda: inventory)
    assert upstream_registries(site.listed.images) == [
        "docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]
    targets = [s.target for s in site.listed.images]
    assert len(targets) == len(set(targets))
    assert all(s.target_repo == s.source.repo for s in site.listed.images), \
        "upstream repository paths are kept"


SHIPPED = [
    pytest.param({"cluster": {"version": "v1.34.3+k3s1", "disable": ["traefik", "servicelb"]},
                  "network": {"vip": "192.168.10.25"}}, ("k3s",), [
        "docker.io/rancher/klipper-helm:v0.9.12-build20251215",
        "docker.io/rancher/local-path-provisioner:v0.0.32",
        "docker.io/rancher/mirrored-coredns-coredns:1.13.1",
        "docker.io/rancher/mirrored-library-busybox:1.37.0",
        "docker.io/rancher/mirrored-metrics-server:v0.8.0",
        "docker.io/rancher/mirrored-pause:3.6",
        "ghcr.io/kube-vip/kube-vip:v0.8.9"], id="k3s-lab-pin-traefik-servicelb-disabled"),
    pytest.param({"cluster": {"version": "v1.34.3+k3s1", "disable": []}}, ("k3s",), [
        "docker.io/rancher/klipper-helm:v0.9.12-build20251215",
        "docker.io/rancher/klipper-lb:v0.4.13",
        "docker.io/rancher/local-path-provisioner:v0.0.32",
        "docker.io/rancher/mirrored-coredns-coredns:1.13.1",
        "docker.io/rancher/mirrored-library-busybox:1.37.0",
        "docker.io/rancher/mirrored-library-traefik:3.5.1",
        "docker.io/rancher/mirrored-metrics-server:v0.8.0",
        "docker.io/rancher/mirrored-pause:3.6"], id="k3s-nothing-disabled-ingress-and-lb"),
    pytest.param({"metallb": {"version": "v0.14.9", "mode": "bgp"}}, ("metallb",), [
        "quay.io/metallb/controller:v0.14.9", "quay.io/metallb/speaker:v0.14.9",
        "docker.io/library/nginx:1.27-alpine"], id="metallb-bgp-native-backend"),
    pytest.param({"metallb": {"version": "v0.14.9", "mode": "bgp", "backend": "frr"}},
                 ("metallb",), [
        "quay.io/metallb/controller:v0.14.9", "quay.io/metallb/speaker:v0.14.9",
        "quay.io/frrouting/frr:9.1.0", "docker.io/library/nginx:1.27-alpine"],
        id="metallb-frr-backend-adds-frr"),
    pytest.param({}, ("cluster-api",), None, id="base-list-unconditional"),
]


@pytest.mark.parametrize("inventory, runbooks, want", SHIPPED)
def test_shipped_lists_select_exactly_the_pinned_versions_images(inventory, runbooks, want):
    got = refs(Path(DEFAULT_IMAGES), inventory, runbooks)
    if want is None:  # the base list: seed 000's images, whatever the inventory says
        want = refs(Path(DEFAULT_IMAGES), {"cluster": {"version": "v1.34.3+k3s1"}},
                    runbooks)
        assert "registry.k8s.io/pause:3.6" in got and "ghcr.io/kube-vip/kube-vip:v0.4.0" in got
    assert got == want


@pytest.mark.parametrize("inventory, words", [
    pytest.param({"cluster": {"version": "v1.99.0+k3s1"}}, "no images listed for version "
                 "v1.99.0+k3s1 (listed: v1.34.3+k3s1)", id="k3s-unknown-version"),
    pytest.param({"metallb": {"version": "v0.99.0"}}, "no images listed for version v0.99.0",
                 id="metallb-unknown-version"),
])
def test_shipped_lists_refuse_a_version_they_do_not_list(inventory, words):
    with pytest.raises(ImageListError, match=words.replace("+", r"\+").replace("(", r"\(")
                       .replace(")", r"\)")):
        refs(Path(DEFAULT_IMAGES), inventory)


def test_the_images_the_runbooks_run_are_the_ones_their_lists_mirror():
    """kube-vip of the k3s runbook's static pod and the metallb runbook's demo image are
    pulled by their local names, so their lists must hold exactly those."""
    from runbooks.k3s.config import KUBE_VIP_IMAGE
    from runbooks.metallb.demo import IMAGE

    inventory = {"cluster": {"version": "v1.34.3+k3s1"}, "network": {"vip": "10.0.0.9"},
                 "metallb": {"version": "v0.14.9"}}
    site = site_images(Path(DEFAULT_IMAGES), lambda: inventory, ("k3s", "metallb"))
    targets = {s.target for s in site.listed.images}
    assert KUBE_VIP_IMAGE in targets and IMAGE in targets
