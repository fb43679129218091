"""RouterOS 6 and 7: only the commands that remove the difference, against a double that
replays recorded `print terse` output and applies what it is sent (tests/support)."""

from __future__ import annotations

import dataclasses

import pytest

from runbooks.common import routeros_state
from runbooks.common.bgp import site_plan
from runbooks.router import routeros
from tests.support.routeros_double import RouterOSDouble
from tests.unit.bgp_site import load_site

# recorded shapes of `print terse` on a router someone configured by hand (seed 001)
ROS6_PRINTED = {
    "instance": " 0   name=default as=65530 router-id=0.0.0.0 redistribute-connected=no "
                "redistribute-static=no routing-table=\"\" client-to-client-reflection=yes\n",
    "filter": "",
    "peer": (" 0   name=peer1 instance=default remote-address=10.0.2.1 remote-as=64500 "
             "tcp-md5-key=\"\" nexthop-choice=default multihop=no hold-time=3m ttl=default\n"
             " 1 X name=metallb-rp0 instance=default remote-address=192.168.10.3 "
             "remote-as=64500 tcp-md5-key=\"\" hold-time=3m in-filter=metallb-in "
             "out-filter=metallb-out\n"
             " 2   name=metallb-old instance=default remote-address=192.168.10.9 "
             "remote-as=64513 hold-time=3m\n"),
}
ROS7_PRINTED = {
    "instance": " 0   name=default as=65530 router-id=192.168.10.6\n",
    "filter": " 0   chain=metallb-in rule=\"reject\" comment=greenroom\n",
    "peer": "",
}


def _site(kind: str):  # type: ignore[no-untyped-def]
    inventory, _ = load_site()
    site = site_plan(inventory)
    return site, dataclasses.replace(site.router("edge"), kind=kind)


def _plan_on(double: RouterOSDouble, kind: str, password: str | None) -> list[str]:
    site, router = _site(kind)
    printed = {table: double.run(command)
               for table, command in routeros.print_commands(kind).items()}
    return routeros.plan_commands(site, router, password, printed)


@pytest.mark.parametrize("kind", routeros.KINDS)
def test_converges_in_one_run_and_second_run_sends_nothing(kind: str) -> None:
    double = RouterOSDouble(kind, ROS6_PRINTED if kind == "routeros6" else ROS7_PRINTED)
    first = _plan_on(double, kind, "s3cret-pw")
    assert first
    for command in first:
        double.run(command)
    assert _plan_on(double, kind, "s3cret-pw") == []


def test_routeros6_commands_for_a_hand_configured_router() -> None:
    double = RouterOSDouble("routeros6", ROS6_PRINTED)
    commands = _plan_on(double, "routeros6", None)
    assert commands[0] == ("/routing bgp instance set default as=64512 "
                           "router-id=192.168.10.6")
    assert "/routing bgp peer enable [find name=metallb-rp0]" in commands
    assert "/routing bgp peer set [find name=metallb-rp0] remote-as=64513" in commands
    assert any(c.startswith("/routing bgp peer add name=metallb-rp1 ") for c in commands)
    assert "/routing bgp peer remove [find name=metallb-old]" in commands
    assert not any("peer1" in c for c in commands), "a peer greenroom did not make is kept"


def test_routeros7_replaces_filter_rules_that_differ() -> None:
    double = RouterOSDouble("routeros7", ROS7_PRINTED)
    commands = _plan_on(double, "routeros7", None)
    assert commands[0] == "/routing/bgp/template set default as=64512"
    assert commands[1] == "/routing/filter/rule remove [find comment=greenroom]"
    assert ("/routing/bgp/connection add name=metallb-rp0 templates=default as=64512 "
            "remote.address=192.168.10.3 remote.as=64513 local.role=ebgp "
            "input.filter=metallb-in output.filter-chain=metallb-out") in commands


def test_a_changed_password_is_set_again() -> None:
    double = RouterOSDouble("routeros7", ROS7_PRINTED)
    for command in _plan_on(double, "routeros7", "old-pass"):
        double.run(command)
    commands = _plan_on(double, "routeros7", "new-pass")
    assert commands == [
        "/routing/bgp/connection set [find name=metallb-rp0] tcp-md5-key=new-pass",
        "/routing/bgp/connection set [find name=metallb-rp1] tcp-md5-key=new-pass"]


@pytest.mark.parametrize(("value", "seconds"), [
    ("3m", 180), ("1m30s", 90), ("90s", 90), ("90", 90), ("1h", 3600), ("x", None)],
    ids=["minutes", "mixed", "seconds", "bare", "hours", "junk"])
def test_durations(value: str, seconds: int | None) -> None:
    assert routeros.seconds(value) == seconds


def test_quote_escapes_what_routeros_would_read() -> None:
    assert routeros.quote("plain-1.2") == "plain-1.2"
    assert routeros.quote('a "b" $c') == '"a \\"b\\" \\$c"'


def test_session_states() -> None:
    ros6 = (" 0 E name=metallb-rp0 remote-address=192.168.10.3 state=established\n"
            " 1   name=metallb-rp1 remote-address=192.168.10.4 state=active\n")
    assert routeros_state.session_states("routeros6", ros6) == {"metallb-rp0": True,
                                                         "metallb-rp1": False}
    ros7 = (" 0 E name=metallb-rp0-1 remote.address=192.168.10.3 remote.as=64513\n"
            " 1   name=metallb-rp1-1 remote.address=192.168.10.4 remote.as=64513\n")
    assert routeros_state.session_states("routeros7", ros7) == {"metallb-rp0": True,
                                                         "metallb-rp1": False}
