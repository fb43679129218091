"""The k3s double's kube-vip emulation (lab only): the VIP and interface it reads from the
static pod greenroom renders, and that a double run under K3S_DOUBLE_ROOT (a test on this
machine) never touches this machine's addresses."""

from __future__ import annotations

import pytest

from runbooks.core.templates import render
from runbooks.lab.doubles.k3s import k3s


def test_the_vip_and_interface_come_from_the_rendered_static_pod():
    text = render("k3s/kube-vip.yaml.j2", image="dell:5001/kube-vip/kube-vip:v0.8.9",
                  interface="eth0.100", vip="192.168.10.25", managed_from="hosts/lab.yaml")
    assert k3s.kube_vip_settings(text) == ("192.168.10.25", "eth0.100")


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param('env:\n- {name: vip_interface, value: "eth0.100"}\n', id="no-address"),
    pytest.param('env:\n- {name: address, value: "192.168.10.25"}\n', id="no-interface"),
])
def test_without_both_nothing_is_held(text):
    assert k3s.kube_vip_settings(text) is None


def test_never_under_a_test_root(tmp_path, monkeypatch):
    manifest = tmp_path / "kube-vip.yaml"
    manifest.write_text('- {name: address, value: "192.168.10.25"}\n'
                        '- {name: vip_interface, value: "lo"}\n')
    monkeypatch.setattr(k3s, "KUBE_VIP", manifest)
    monkeypatch.setenv("K3S_DOUBLE_ROOT", str(tmp_path))

    def refuse(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr("subprocess.run", refuse)
    k3s.hold_vip(True)
    k3s.hold_vip(False)
