"""`inv router` on RouterOS 6 and 7 over SSH, against the RouterOS double behind a loopback
SSH server (tests/support): check mode sends only `print`, the run sends only what the
printed tables lack, a second run sends nothing, the password never shows."""

from __future__ import annotations

import paramiko
import pytest
from invoke import Context, Exit

from runbooks.router.tasks import converge
from tests.support.routeros_double import RouterOSDouble
from tests.support.routeros_sshd import RouterOSServer
from tests.unit.bgp_site import SITE
from tests.unit.test_router_routeros import ROS6_PRINTED, ROS7_PRINTED

PASSWORD = "r0uter-s3cret"


@pytest.fixture
def client_key(tmp_path, monkeypatch) -> paramiko.PKey:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(home / ".ssh" / "id_rsa"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GREENROOM_BGP_PASSWORD", PASSWORD)
    return key


def site_file(tmp_path, kind: str, port: int) -> str:
    text = SITE.replace("  peers: [edge]\n",
                        "  peers: [edge]\n  password: {env: GREENROOM_BGP_PASSWORD}\n")
    text = text.replace("    address: 192.168.1.6\n",
                        f"    address: 127.0.0.1\n    port: {port}\n    user: admin\n")
    text = text.replace("vars: {kind: frr, asn: 64512}", f"vars: {{kind: {kind}, asn: 64512}}")
    path = tmp_path / "bgp.yaml"
    path.write_text(text)
    return str(path)


def trust(server: RouterOSServer, home_ssh) -> None:
    key = server.host_key
    (home_ssh / "known_hosts").write_text(
        f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n")


@pytest.mark.parametrize("kind", ["routeros6", "routeros7"])
def test_router_converges_routeros_over_ssh_then_sends_nothing(kind, tmp_path, client_key,
                                                              capsys) -> None:
    double = RouterOSDouble(kind, ROS6_PRINTED if kind == "routeros6" else ROS7_PRINTED)
    with RouterOSServer(double, client_key) as server:
        trust(server, tmp_path / "home" / ".ssh")
        inventory = site_file(tmp_path, kind, server.port)
        converge(Context(), inventory=inventory, check=True)
        out = capsys.readouterr().out
        assert "edge: would send" in out and PASSWORD not in out
        assert all(" print terse" in line for line in double.log), double.log
        double.log.clear()
        converge(Context(), inventory=inventory)
        out = capsys.readouterr().out
        assert "edge: sent" in out and PASSWORD not in out and "********" in out
        sent = [c for c in double.log if " print terse" not in c]
        assert sent and any(PASSWORD in c for c in sent)
        double.log.clear()
        converge(Context(), inventory=inventory)
        assert "edge: converged, nothing to send" in capsys.readouterr().out
        assert all(" print terse" in line for line in double.log), double.log


def test_a_refused_command_fails_the_run_naming_it(tmp_path, client_key, capsys) -> None:
    double = RouterOSDouble("routeros7", ROS7_PRINTED)
    double.menus = {**double.menus, "peer": "/routing/bgp/no-such-menu"}  # refuses `add`
    with RouterOSServer(double, client_key) as server:
        trust(server, tmp_path / "home" / ".ssh")
        with pytest.raises(Exit) as failed:
            converge(Context(), inventory=site_file(tmp_path, "routeros7", server.port))
    out = capsys.readouterr().out
    assert failed.value.code == 1
    assert "edge (routeros7): FAILED: the router refused" in out and PASSWORD not in out


def test_an_unknown_host_key_is_refused_before_any_command(tmp_path, client_key,
                                                          capsys) -> None:
    double = RouterOSDouble("routeros7", ROS7_PRINTED)
    with RouterOSServer(double, client_key) as server, pytest.raises(Exit):
        converge(Context(), inventory=site_file(tmp_path, "routeros7", server.port))
    assert "unknown host key" in capsys.readouterr().out
    assert double.log == []
