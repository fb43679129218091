"""pi-prep: containerd config merge for containerd 1.x (config version 2) and 2.x (version 3)."""

from __future__ import annotations

import tomllib

import pytest

from runbooks.core.facts import FactResult
from runbooks.pi_prep.containerd import (
    ContainerdConfig,
    config_version_for,
    merge_containerd_config,
)
from runbooks.pi_prep.toml_write import dumps

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
    merged = tomllib.loads(merge_containerd_config(DEBIAN_PACKAGED, 1, IMAGE))
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
    merged = tomllib.loads(merge_containerd_config(None, 2, IMAGE))
    assert merged["version"] == 3
    runtime = _get(merged, "plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes",
                   "runc")
    assert runtime["options"]["SystemdCgroup"] is True
    images = _get(merged, "plugins", "io.containerd.cri.v1.images")
    assert images["pinned_images"]["sandbox"] == IMAGE
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert "io.containerd.grpc.v1.cri" not in merged["plugins"]


def test_v2_file_kept_as_v2_under_containerd_2():
    merged = tomllib.loads(merge_containerd_config(DEBIAN_PACKAGED, 2, IMAGE))
    assert merged["version"] == 2 and "io.containerd.grpc.v1.cri" in merged["plugins"]


@pytest.mark.parametrize("major,image", [(1, IMAGE), (2, IMAGE), (1, None)],
                         ids=["v2", "v3", "v2-without-sandbox-image"])
def test_converged_config_is_left_byte_for_byte(major, image):
    once = merge_containerd_config(DEBIAN_PACKAGED if major == 1 else None, major, image)
    assert merge_containerd_config(once, major, image) == once
    hand_written = "# mine\n" + once  # comments of a converged file survive
    assert merge_containerd_config(hand_written, major, image) == hand_written


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
     "mirrors cannot be used with config_path"),
    (f"version = 2\n[{V2}]\ncontainerd = 5\n", 1, "expected a table"),
], ids=["invalid-toml", "version-1-layout", "v3-on-containerd-1", "unknown-version",
        "registry-mirrors-conflict", "scalar-where-table-expected"])
def test_refused_configs(text, major, message):
    with pytest.raises(ValueError, match=message):
        merge_containerd_config(text, major)


def test_toml_writer_round_trips():
    data = {"version": 2, "root": "/var/lib/containerd", "oom_score": -999, "ratio": 0.5,
            "disabled_plugins": [], "list": ["a", "b \"q\""],
            "grpc": {"address": "/run/containerd/containerd.sock", "uid": 0},
            "plugins": {"a.b": {"c": {"d": True}}, "empty": {}},
            "proxy_plugins": [{"type": "snapshot", "address": "/x"}, {"type": "y"}]}
    assert tomllib.loads(dumps(data)) == data


def _step_facts(version_out, content):
    file_fact = (FactResult(0, f"644 root root\n@@greenroom-content\n{content}")
                 if content is not None else FactResult(1, ""))
    return {"version": FactResult(0, version_out), "file": file_fact}


def test_step_uses_apt_candidate_before_install_and_notifies_restart():
    step = ContainerdConfig(IMAGE)
    changes = step.plan(_step_facts("1.6.20~ds1-1+deb12u3\n", None))
    assert [c.summary for c in changes] == ["create /etc/containerd/config.toml"]
    assert "version = 2" in changes[0].diff and step.notify == ("restart containerd",)


def test_step_no_change_when_converged_and_fails_clearly_without_containerd():
    step = ContainerdConfig(IMAGE)
    converged = merge_containerd_config(DEBIAN_PACKAGED, 1, IMAGE)
    assert step.plan(_step_facts("containerd github.com/containerd/containerd 1.6.20~ds1 x",
                                 converged)) == []
    from runbooks.core.steps import StepFailed
    with pytest.raises(StepFailed, match="cannot tell which containerd"):
        step.plan(_step_facts("", None))
