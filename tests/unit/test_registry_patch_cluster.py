"""Pure tests: registry.patch-cluster on the seed's cluster.yaml shape and a current one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from runbooks.registry.images import build_spec, load_image_list
from runbooks.registry.patch_cluster import (
    PatchError,
    Settings,
    patch_file,
    patch_manifest,
    split_documents,
)
from runbooks.registry.targets import DEFAULT_IMAGES

DATA = Path(__file__).parent / "data"
SEED = (DATA / "capi_seed_cluster.yaml").read_text()
CURRENT = (DATA / "capi_current_cluster.yaml").read_text()
EP, VIP = "192.168.10.2:5001", "192.168.10.25"
IMAGES = load_image_list(DEFAULT_IMAGES).images + [
    build_spec("ghcr.io/kube-vip/kube-vip:v0.8.9", None, ()),
    build_spec("registry.k8s.io/pause:3.10", None, ())]


def settings(**kw) -> Settings:
    return Settings(kw.pop("endpoint", EP), kw.pop("vip", VIP), images=kw.pop("images", IMAGES),
                    **kw)


def docs(text: str) -> list:
    return [d for d in YAML(typ="safe").load_all(text) if d]


def by_kind(text: str, kind: str) -> dict:
    return next(d for d in docs(text) if d["kind"] == kind)


def files_of(spec: dict) -> dict[str, str]:
    return {f["path"]: f["content"] for f in spec.get("files", [])}


def test_split_documents_round_trips():
    assert "".join(split_documents(SEED)) == SEED
    assert "".join(split_documents(CURRENT)) == CURRENT
    assert len(split_documents(SEED)) == 9           # leading comment + 8 documents


def test_seed_shape_gets_what_the_seed_does_by_hand():
    out, report = patch_manifest(SEED, settings())
    kcp = by_kind(out, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"]
    cluster = kcp["clusterConfiguration"]
    assert cluster["imageRepository"] == EP
    assert cluster["etcd"]["local"]["imageRepository"] == EP
    assert cluster["dns"]["imageRepository"] == f"{EP}/coredns"     # -> EP/coredns/coredns:tag
    for key in ("initConfiguration", "joinConfiguration"):
        args = kcp[key]["nodeRegistration"]["kubeletExtraArgs"]
        assert args["pod-infra-container-image"] == f"{EP}/pause:3.4.1"    # kubeadm 1.21's
        assert args["provider-id"].startswith("microvm://")                # kept
    config = tomllib.loads(files_of(kcp)["/etc/containerd/config.toml"])
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == f"{EP}/pause:3.4.1"
    assert cri["registry"]["mirrors"][EP]["endpoint"] == [f"http://{EP}"]
    assert cri["registry"]["configs"][EP]["tls"]["insecure_skip_verify"] is True
    for upstream in ("docker.io", "ghcr.io", "registry.k8s.io"):
        assert cri["registry"]["mirrors"][upstream]["endpoint"] == [f"http://{EP}"]
    commands = kcp["preKubeadmCommands"]
    assert commands[0] == "systemctl restart containerd"
    vip_cmd = commands[1]
    assert f"ctr images pull --plain-http=true {EP}/kube-vip/kube-vip:v0.4.0" in vip_cmd
    assert f"ctr run --rm --net-host {EP}/kube-vip/kube-vip:v0.4.0 vip" in vip_cmd
    assert f"--address {VIP}" in vip_cmd and "ghcr.io/kube-vip/kube-vip:v0.4.0" not in vip_cmd
    assert vip_cmd.endswith(f"sed -i 's#ghcr.io/kube-vip/kube-vip:#{EP}/kube-vip/kube-vip:#' "
                            "/etc/kubernetes/manifests/kube-vip.yaml")
    worker = by_kind(out, "KubeadmConfigTemplate")["spec"]["template"]["spec"]
    assert "/etc/containerd/config.toml" in files_of(worker)
    assert (worker["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
            ["pod-infra-container-image"]) == f"{EP}/pause:3.4.1"
    flannel = by_kind(out, "ConfigMap")["data"]["flannel.yaml"]
    assert f"image: {EP}/rancher/mirrored-flannelcni-flannel-cni-plugin:v1.1.0" in flannel
    assert flannel.count(f"image: {EP}/rancher/mirrored-flannelcni-flannel:v0.19.2") == 2
    assert "#image: flannelcni/flannel-cni-plugin:v1.1.0" in flannel          # comment kept
    assert "registry.mirrors" in report.containerd_form
    assert report.unknown == [] and report.warnings == []


def test_untouched_documents_and_comments_are_kept_byte_for_byte():
    out, report = patch_manifest(SEED, settings())
    for chunk in split_documents(SEED):
        if any(k in chunk for k in ("kind: Cluster\n", "kind: MicrovmCluster",
                                    "kind: MachineDeployment", "kind: ClusterResourceSet")):
            assert chunk in out
    assert out.startswith("# The shape of seed 000's cluster.yaml")
    assert '        endpoint: "192.168.10.3:9090"   # rp0\'s flintlock' in out
    assert '  version: "v1.21.8"' in out                               # quotes kept
    assert "document 1 Cluster mvm-demo" in report.unchanged


@pytest.mark.parametrize("text", [SEED, CURRENT], ids=["seed", "current"])
def test_patching_a_patched_file_changes_nothing(text):
    once, _ = patch_manifest(text, settings())
    twice, report = patch_manifest(once, settings())
    assert twice == once
    assert report.changed == []


def test_current_shape_hosts_toml_and_v1beta2():
    out, report = patch_manifest(CURRENT, settings())
    kcp = by_kind(out, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"]
    files = files_of(kcp)
    config = tomllib.loads(files["/etc/containerd/config.toml"])
    assert config["version"] == 2
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["sandbox_image"] == f"{EP}/pause:3.10"
    assert "mirrors" not in cri["registry"]
    for name in (EP, "docker.io", "ghcr.io", "registry.k8s.io"):
        hosts = tomllib.loads(files[f"/etc/containerd/certs.d/{name}/hosts.toml"])
        assert hosts["server"] == f"http://{EP}", name        # nothing upstream
        assert hosts["host"][f"http://{EP}"]["capabilities"] == ["pull", "resolve"]
    vip_pod = docs(files["/etc/kubernetes/manifests/kube-vip.yaml"])[0]["spec"]["containers"][0]
    assert vip_pod["image"] == f"{EP}/kube-vip/kube-vip:v0.8.9"
    assert {"name": "address", "value": VIP} in vip_pod["env"]
    # Kubernetes 1.34: the kubelet takes the sandbox image from containerd, no flag
    args = kcp["initConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
    assert args == [{"name": "cloud-provider", "value": "external"}]
    assert by_kind(out, "ExampleCluster")["spec"]["controlPlaneEndpoint"]["host"] == VIP
    assert "      # kube-vip holds the control plane's address\n" in out
    assert report.unknown == ["document 7 Widget not-cluster-api: not a kind patch-cluster "
                              "knows; left as it is"]
    assert split_documents(CURRENT)[-1] in out
    assert "hosts.toml config_path" in report.containerd_form


def test_v1beta2_kubelet_args_get_a_name_value_item_before_1_27():
    text = CURRENT.replace("version: v1.34.1", "version: v1.26.3")
    out, _ = patch_manifest(text, settings())
    kcp = by_kind(out, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"]
    args = kcp["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
    assert args == [{"name": "cloud-provider", "value": "external"},
                    {"name": "pod-infra-container-image", "value": f"{EP}/pause:3.9"}]


FORMS = [
    ("1.4-on-new-kubernetes", "1.4.13", "v1.30.0", "mirrors", None),
    ("1.5", "1.5.9", "v1.21.8", "hosts", 2),
    ("1.7", "1.7.24", "v1.34.1", "hosts", 2),
    ("2.0", "2.0.5", "v1.34.1", "hosts", 3),
    ("auto-old-kubernetes", None, "v1.21.8", "mirrors", None),
    ("auto-new-kubernetes", None, "v1.28.0", "hosts", 2),
]


@pytest.mark.parametrize("containerd,version,form,config", [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
def test_containerd_form_follows_the_node_image(containerd, version, form, config):
    text = CURRENT.replace("version: v1.34.1", f"version: {version}")
    out, _ = patch_manifest(text, settings(containerd=containerd))
    files = files_of(by_kind(out, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"])
    parsed = tomllib.loads(files["/etc/containerd/config.toml"])
    hosts = [p for p in files if p.endswith("hosts.toml")]
    if form == "mirrors":
        assert "mirrors" in parsed["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
        assert hosts == []
    else:
        assert parsed["version"] == config
        table = ("io.containerd.grpc.v1.cri" if config == 2 else "io.containerd.cri.v1.images")
        assert parsed["plugins"][table]["registry"]["config_path"] == "/etc/containerd/certs.d"
        assert len(hosts) == 4


def test_kube_vip_added_when_the_template_has_none():
    text = CURRENT.replace("kube-vip.yaml", "other.yaml")
    out, report = patch_manifest(text, settings())
    cmd = by_kind(out, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"]["preKubeadmCommands"][-1]
    assert f"--address {VIP}" in cmd and f"{EP}/kube-vip/kube-vip:v0.4.0" in cmd
    out, report = patch_manifest(text, settings(vip=None))
    assert any("no network.vip" in w for w in report.warnings)


def test_image_missing_from_the_list_is_named():
    _, report = patch_manifest(SEED, settings(images=load_image_list(DEFAULT_IMAGES).images[:3]))
    assert any("docker.io/rancher/mirrored-flannelcni-flannel:v0.19.2 is not in the site's "
               "image list" in w for w in report.warnings)


def test_bad_yaml_names_the_line():
    text = CURRENT.replace("  replicas: 2\n", "  replicas: [2\n")
    with pytest.raises(PatchError, match=r"line \d+: not valid YAML"):
        patch_manifest(text, settings())


def test_patch_file_in_place_out_and_check(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(SEED)
    _, new, _, written = patch_file(str(path), settings(), check=True)
    assert not written and path.read_text() == SEED
    out = tmp_path / "patched.yaml"
    assert patch_file(str(path), settings(), str(out))[3]
    assert out.read_text() == new and path.read_text() == SEED
    assert patch_file(str(path), settings())[3]
    assert path.read_text() == new
    assert not patch_file(str(path), settings())[3]             # a second run writes nothing
    with pytest.raises(PatchError, match="cannot read"):
        patch_file(str(tmp_path / "missing.yaml"), settings())
