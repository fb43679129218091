"""containerd's config.toml (Kubernetes settings and the registry's config_path) for
containerd 1.x (config version 2) and 2.x (version 3), and certs.d hosts.toml: the one merger
pi-prep and registry.trust share (runbooks.common.containerd)."""

from __future__ import annotations

import tomllib

import pytest

from runbooks.common import containerd
from runbooks.common.containerd import (
    ContainerdConfig,
    config_version_for,
    merge_containerd_config,
)
from runbooks.core.facts import FactResult

V2 = 'plugins."io.containerd.grpc.v1.cri"'
DEBIAN_PACKAGED = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
IMAGE = "192.168.10.2:5001/pause:3.9"


def _get(data, *path):
    for key in path:
        data = data[key]
    return data


def test_major_version_picks_config_version():
    assert [config_version_for(m) for m in (1, 2, 3)] == [2, 3, 3]


def test_v2_merge_into_debian_packaged_config_keeps_its_settings():
    merged = tomllib.loads(merge_containerd_config(DEBIAN_PACKAGED, 1, sandbox_image=IMAGE))
    cri = _get(merged, "plugins", "io.containerd.grpc.v1.cri")
    assert merged["version"] == 2
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    assert _get(merged, "plugins", "io.containerd.internal.v1.opt", "path") == \
        "/var/lib/containerd/opt"
    runc = _get(cri, "containerd", "runtimes", "runc")
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == IMAGE
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_v3_fresh_config_for_containerd_2():
    merged = tomllib.loads(merge_containerd_config(None, 2, sandbox_image=IMAGE))
    assert merged["version"] == 3
    runtime = _get(merged, "plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes",
                   "runc")
    assert runtime["options"]["SystemdCgroup"] is True
    images = _get(merged, "plugins", "io.containerd.cri.v1.images")
    assert images["pinned_images"]["sandbox"] == IMAGE
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert "io.containerd.grpc.v1.cri" not in merged["plugins"]


def test_v2_file_kept_as_v2_under_containerd_2():
    merged = tomllib.loads(merge_containerd_config(DEBIAN_PACKAGED, 2, sandbox_image=IMAGE))
    assert merged["version"] == 2 and "io.containerd.grpc.v1.cri" in merged["plugins"]


@pytest.mark.parametrize("major,image", [(1, IMAGE), (2, IMAGE), (1, None)],
                         ids=["v2", "v3", "v2-without-sandbox-image"])
def test_converged_config_is_left_byte_for_byte(major, image):
    once = merge_containerd_config(DEBIAN_PACKAGED if major == 1 else None, major,
                                   sandbox_image=image)
    assert merge_containerd_config(once, major, sandbox_image=image) == once
    hand_written = "# mine\n" + once  # comments of a converged file survive
    assert merge_containerd_config(hand_written, major, sandbox_image=image) == hand_written


def test_systemd_cgroup_false_is_flipped():
    text = DEBIAN_PACKAGED + (f"\n[{V2}.containerd.runtimes.runc.options]\n"
                              "  SystemdCgroup = false\n  BinaryName = \"/usr/bin/runc\"\n")
    merged = tomllib.loads(merge_containerd_config(text, 1))
    options = _get(merged, "plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes",
                   "runc", "options")
    assert options == {"SystemdCgroup": True, "BinaryName": "/usr/bin/runc"}


@pytest.mark.parametrize("text,major,message", [
    ("version = 2\n[plugins\n", 1, "not valid TOML"),
    ("[plugins.cri]\n  sandbox_image = \"x\"\n", 1, "config version 1"),
    ("version = 3\n", 1, "needs containerd 2.x"),
    ("version = 7\n", 2, "not supported"),
    (f"version = 2\n[{V2}.registry.mirrors.\"docker.io\"]\nendpoint = [\"https://m\"]\n", 1,
     "mirrors cannot be used together with config_path"),
    (f"version = 2\n[{V2}]\ncontainerd = 5\n", 1, "expected a table"),
], ids=["invalid-toml", "version-1-layout", "v3-on-containerd-1", "unknown-version",
        "registry-mirrors-conflict", "scalar-where-table-expected"])
def test_refused_configs(text, major, message):
    with pytest.raises(ValueError, match=message):
        merge_containerd_config(text, major)


def _step_facts(version_out, content):
    file_fact = (FactResult(0, f"644 root root\n@@greenroom-content\n{content}")
                 if content is not None else FactResult(1, ""))
    return {"version": FactResult(0, version_out), "file": file_fact}


def test_step_uses_apt_candidate_before_install_and_notifies_restart():
    step = ContainerdConfig(kubernetes=True, sandbox_image=IMAGE)
    changes = step.plan(_step_facts("1.6.20~ds1-1+deb12u3\n", None))
    assert [c.summary for c in changes] == ["create /etc/containerd/config.toml"]
    assert "version = 2" in changes[0].diff and step.notify == ("restart containerd",)


def test_step_no_change_when_converged_and_fails_clearly_without_containerd():
    step = ContainerdConfig(kubernetes=True, sandbox_image=IMAGE)
    converged = merge_containerd_config(DEBIAN_PACKAGED, 1, sandbox_image=IMAGE)
    assert step.plan(_step_facts("containerd github.com/containerd/containerd 1.6.20~ds1 x",
                                 converged)) == []
    from runbooks.core.steps import StepFailed
    with pytest.raises(StepFailed, match="cannot tell which containerd"):
        step.plan(_step_facts("", None))


EP = "192.168.10.2:5001"
URL = f"http://{EP}"

DEBIAN_CONTAINERD = """version = 2
# Debian's packaged settings
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "/etc/cni/net.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
"""


def registry_path(data: dict, version: int) -> str | None:
    node = data
    for key in (*containerd.registry_table(version), "config_path"):
        node = node.get(key) if isinstance(node, dict) else None
    return node


# -- containerd config.toml -----------------------------------------------------------------

@pytest.mark.parametrize("content, major, version, expected", [
    pytest.param(None, 1, 2, containerd.CERTS_DIR, id="fresh-containerd1-v2"),
    pytest.param("", 2, 3, containerd.CERTS_DIR, id="empty-containerd2-v3"),
    pytest.param(DEBIAN_CONTAINERD, 1, 2, containerd.CERTS_DIR, id="debian-config"),
    pytest.param('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n',
                 1, 2, containerd.CERTS_DIR, id="empty-registry-table"),
    pytest.param('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                 '  config_path = "/etc/docker/certs.d"\n', 1, 2,
                 f"{containerd.CERTS_DIR}:/etc/docker/certs.d", id="other-path-kept-after-ours"),
    pytest.param('version = 3\n[plugins."io.containerd.cri.v1.images".pinned_images]\n'
                 '  sandbox = "pause:3.10"\n', 2, 3, containerd.CERTS_DIR, id="v3-layout"),
    pytest.param('version = 2\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n'
                 '    sandbox_image = "x/pause:3.9"\n', 1, 2, containerd.CERTS_DIR,
                 id="nested-headers"),
])
def test_containerd_config_path_merged(content, major, version, expected):
    merged = merge_containerd_config(content, major, kubernetes=False)
    data = tomllib.loads(merged)
    assert data["version"] == version
    assert registry_path(data, version) == expected
    before = tomllib.loads(content or "")
    before.pop("version", None)
    for key, value in before.items():  # every other setting is still there
        assert key in data
        if key != "plugins":
            assert data[key] == value
    # second run: no change
    assert merge_containerd_config(merged, major, kubernetes=False) == merged


def test_containerd_text_merge_keeps_comments_and_settings():
    merged = merge_containerd_config(DEBIAN_CONTAINERD, 1, kubernetes=False)
    lines = iter(merged.splitlines())
    assert all(line in lines for line in DEBIAN_CONTAINERD.splitlines())  # all kept, in order
    assert "# Debian's packaged settings" in merged
    cni = tomllib.loads(merged)["plugins"]["io.containerd.grpc.v1.cri"]["cni"]
    assert cni == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}


@pytest.mark.parametrize("content", [
    pytest.param('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                 '  config_path = "/etc/containerd/certs.d"\n', id="exact"),
    pytest.param('version = 2  # keep\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                 '  config_path = "/x:/etc/containerd/certs.d"\n', id="listed-second"),
])
def test_containerd_converged_is_unchanged(content):
    assert merge_containerd_config(content, 1, kubernetes=False) == content


@pytest.mark.parametrize("content, words", [
    pytest.param("version = 2\n[plugins\n", "not valid TOML", id="invalid-toml"),
    pytest.param('[plugins.cri]\nx = 1\n', "version 1", id="version-1-layout"),
    pytest.param("version = 7\n", "not supported", id="unknown-version"),
    pytest.param('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors.'
                 '"docker.io"]\n  endpoint = ["https://x"]\n', "mirrors", id="old-mirrors"),
    pytest.param('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                 '  config_path = 3\n', "expected a string", id="path-not-string"),
    pytest.param('version = 2\nplugins = 5\n', "expected a table", id="plugins-not-table"),
])
def test_containerd_bad_config_refused(content, words):
    with pytest.raises(ValueError, match=words):
        merge_containerd_config(content, 1, kubernetes=False)


# -- hosts.toml ------------------------------------------------------------------------------

PI_PREP_HOSTS = (f'# {EP}: written by greenroom pi-prep.\nserver = "{URL}"\n\n'
                 f'[host."{URL}"]\n  capabilities = ["pull", "resolve"]\n')


@pytest.mark.parametrize("content", [None, "", "  \n"], ids=["missing", "empty", "blank"])
def test_hosts_toml_fresh(content):
    data = tomllib.loads(containerd.merge_hosts_toml(content, EP))
    assert data == {"server": URL, "host": {URL: {"capabilities": ["pull", "resolve"]}}}


@pytest.mark.parametrize("content", [
    pytest.param(PI_PREP_HOSTS, id="pi-prep-file-accepted"),
    pytest.param(containerd.hosts_toml(EP), id="ours"),
    pytest.param(f'server = "{URL}"\n[host."{URL}"]\ncapabilities = ["pull", "resolve", '
                 '"push"]\n', id="more-capabilities"),
])
def test_hosts_toml_converged_is_unchanged(content):
    assert containerd.merge_hosts_toml(content, EP) == content


@pytest.mark.parametrize("content", [
    pytest.param('server = "https://registry-1.example"\n', id="other-server"),
    pytest.param(f'server = "{URL}"\n[host."{URL}"]\ncapabilities = ["pull"]\n'
                 'ca = "/etc/ca.pem"\n', id="missing-resolve"),
    pytest.param('server = "http://old:5000"\n[host."http://mirror:5000"]\n'
                 'capabilities = ["pull"]\n', id="other-host-kept"),
])
def test_hosts_toml_merged_keeps_other_settings(content):
    merged = containerd.merge_hosts_toml(content, EP)
    data, before = tomllib.loads(merged), tomllib.loads(content)
    assert data["server"] == URL
    assert {"pull", "resolve"} <= set(data["host"][URL]["capabilities"])
    for name, entry in before.get("host", {}).items():
        for key, value in entry.items():
            if key != "capabilities":
                assert data["host"][name][key] == value
    assert containerd.merge_hosts_toml(merged, EP) == merged


def test_hosts_toml_invalid_refused():
    with pytest.raises(ValueError, match="not valid TOML"):
        containerd.merge_hosts_toml("server = \n", EP)
    with pytest.raises(ValueError, match="expected a table"):
        containerd.merge_hosts_toml(f'server = "x"\nhost = {{"{URL}" = 1}}\n', EP)


def test_user_config_path_is_kept_after_ours_by_the_kubernetes_merge_too():
    """pi-prep used to replace a user's own config_path; both callers now keep it."""
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
            '  # my mirrors\n  config_path = "/etc/docker/certs.d"\n')
    merged = merge_containerd_config(text, 1, sandbox_image=IMAGE)
    assert registry_path(tomllib.loads(merged), 2) == \
        f"{containerd.CERTS_DIR}:/etc/docker/certs.d"
    assert "# my mirrors" in merged
    assert merge_containerd_config(merged, 1, kubernetes=False) == merged  # trust agrees


def test_trust_then_pi_prep_then_trust_converge_without_fighting():
    trusted = merge_containerd_config(None, 1, kubernetes=False)
    prepared = merge_containerd_config(trusted, 1, sandbox_image=IMAGE)
    assert prepared != trusted
    assert merge_containerd_config(prepared, 1, kubernetes=False) == prepared
    assert merge_containerd_config(prepared, 1, sandbox_image=IMAGE) == prepared


def test_a_new_hosts_toml_has_no_tls_settings_over_plain_http():
    assert "skip_verify" not in containerd.hosts_toml(EP)


def test_hosts_toml_merge_keeps_comments():
    text = '# ours\nserver = "https://other"  # upstream\n'
    merged = containerd.merge_hosts_toml(text, EP)
    assert "# ours" in merged and tomllib.loads(merged)["server"] == URL
