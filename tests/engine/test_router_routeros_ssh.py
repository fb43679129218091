"""`inv router` on RouterOS 6 and 7 over SSH, against the RouterOS double behind a loopback
SSH server (tests/support): check mode sends only `print`, the run sends only what the
printed tables lack, a second run sends nothing, the password never shows. And `inv
metallb.check` on those routers: sessions and routes read from golden `print` text the
double replays, a session not established or a route missing reported, exit 1."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from invoke import Context, Exit

from runbooks.metallb.tasks import check
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


GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden" / "routeros"
READS = {"routeros6": ("/routing bgp peer print status", "/ip route print detail where bgp"),
         "routeros7": ("/routing/bgp/session print", "/ip/route print detail where bgp")}


@pytest.mark.parametrize("kind, sessions, routes, bad", [
    pytest.param("routeros6", "ros6-peer-print-status.txt", "ros6-route-print.txt", None,
                 id="v6-healthy"),
    pytest.param("routeros6", "ros6-peer-print-status-rp1-down.txt", "ros6-route-print.txt",
                 "session with rp1 (192.168.10.4): active", id="v6-rp1-active"),
    pytest.param("routeros7", "ros7-session-print.txt", "ros7-route-print.txt", None,
                 id="v7-healthy"),
    pytest.param("routeros7", "ros7-session-print-rp1-down.txt",
                 "ros7-route-print-rp1-down.txt",
                 "session with rp1 (192.168.10.4): not established", id="v7-rp1-down"),
])
def test_metallb_check_reads_routeros_sessions_and_routes_over_ssh(
        kind, sessions, routes, bad, tmp_path, client_key, capsys) -> None:
    session_cmd, route_cmd = READS[kind]
    double = RouterOSDouble(kind, {}, {session_cmd: (GOLDEN / sessions).read_text(),
                                       route_cmd: (GOLDEN / routes).read_text()})
    with RouterOSServer(double, client_key) as server:
        trust(server, tmp_path / "home" / ".ssh")
        inventory = site_file(tmp_path, kind, server.port)
        if bad:
            with pytest.raises(Exit) as failed:
                check(Context(), inventory=inventory, address="192.168.20.1")
            assert failed.value.code == 1
        else:
            check(Context(), inventory=inventory, address="192.168.20.1")
    out = capsys.readouterr().out
    assert double.log == [session_cmd, route_cmd]  # read only
    assert f"edge ({kind}): ok   session with rp0 (192.168.10.3): Established" in out
    assert f"edge ({kind}): ok   route to LoadBalancer IP 192.168.20.1" in out
    if bad:
        assert f"edge ({kind}): BAD  {bad}" in out
        assert "1 RouterOS router(s) not healthy" in out
    else:
        assert "BAD" not in out
    assert PASSWORD not in out


def test_metallb_check_reports_a_route_missing_on_routeros(tmp_path, client_key,
                                                          capsys) -> None:
    session_cmd, route_cmd = READS["routeros7"]
    double = RouterOSDouble("routeros7", {}, {
        session_cmd: (GOLDEN / "ros7-session-print.txt").read_text(),
        route_cmd: (GOLDEN / "ros7-route-print.txt").read_text()})
    with RouterOSServer(double, client_key) as server:
        trust(server, tmp_path / "home" / ".ssh")
        with pytest.raises(Exit):
            check(Context(), inventory=site_file(tmp_path, "routeros7", server.port),
                  address="192.168.20.1,192.168.20.7")
    out = capsys.readouterr().out
    assert "edge (routeros7): BAD  route to LoadBalancer IP 192.168.20.7: none active" in out


def test_metallb_check_names_a_router_that_refuses_the_read(tmp_path, client_key,
                                                           capsys) -> None:
    double = RouterOSDouble("routeros7", {})  # no recorded session output: "bad command"
    with RouterOSServer(double, client_key) as server:
        trust(server, tmp_path / "home" / ".ssh")
        with pytest.raises(Exit):
            check(Context(), inventory=site_file(tmp_path, "routeros7", server.port),
                  address="192.168.20.1")
    out = capsys.readouterr().out
    assert ("edge (routeros7): FAILED: the router refused `/routing/bgp/session print`: "
            "bad command name") in out
