"""The router's side as text: frr.conf, bird.conf and RouterOS 6/7 scripts (golden files).

Golden files live in tests/unit/golden/router/; after a deliberate change, regenerate them
with GREENROOM_UPDATE_GOLDEN=1 and read the diff before committing.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from runbooks.common.bgp import site_plan
from runbooks.common.bgp_state import bird_sessions, frr_sessions, route_targets
from runbooks.router import frr
from runbooks.router.render import render_for
from tests.unit.bgp_site import load_site

GOLDEN = Path(__file__).with_name("golden") / "router"
PASSWORD = "s3cret-pw"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GREENROOM_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


CASES = [("frr", None, "frr.conf"), ("frr", PASSWORD, "frr-password.conf"),
         ("bird", PASSWORD, "bird.conf"), ("routeros6", PASSWORD, "routeros6.rsc"),
         ("routeros7", None, "routeros7.rsc")]


@pytest.mark.parametrize(("kind", "password", "golden"), CASES, ids=[c[2] for c in CASES])
def test_router_text_matches_golden(kind: str, password: str | None, golden: str) -> None:
    inventory, _ = load_site()
    site = site_plan(inventory)
    router = dataclasses.replace(site.router("edge"), kind=kind)
    _golden(golden, render_for(site, router, inventory, password))


def test_frr_conf_accepts_only_pool_routes_and_peers_every_node() -> None:
    inventory, _ = load_site()
    site = site_plan(inventory)
    text = render_for(site, site.router("edge"), inventory, None)
    assert "neighbor 192.168.10.3 peer-group METALLB" in text
    assert "neighbor 192.168.10.4 peer-group METALLB" in text
    assert "neighbor METALLB remote-as 64513" in text and "router bgp 64512" in text
    assert "permit 192.168.20.0/28 le 32" in text and "permit 192.168.10.8/30 le 32" in text
    assert "no bgp ebgp-requires-policy" in text and "password" not in text


DAEMONS = [
    ("debian-default", "zebra=yes\nbgpd=no\nospfd=no\n", "zebra=yes\nbgpd=yes\nospfd=no\n"),
    ("already-on", "zebra=yes\nbgpd=yes\n", "zebra=yes\nbgpd=yes\n"),
    ("commented-only", "#bgpd=yes\nzebra=yes\n", "#bgpd=yes\nzebra=yes\nbgpd=yes\n"),
    ("twice", "bgpd=no\nx=1\nbgpd=no\n", "bgpd=yes\nx=1\n"),
    ("spaces", "bgpd = no\n", "bgpd=yes\n"),
]


@pytest.mark.parametrize(("current", "wanted"), [c[1:] for c in DAEMONS],
                         ids=[c[0] for c in DAEMONS])
def test_daemons_with_bgpd(current: str, wanted: str) -> None:
    assert frr.daemons_with_bgpd(current) == wanted


def test_daemons_absent_waits_for_the_package() -> None:
    assert frr.daemons_with_bgpd(None) is None


def test_summary_sessions_reads_frr_json() -> None:
    summary = {"ipv4Unicast": {"peers": {"192.168.10.3": {"state": "Established"},
                                         "192.168.10.4": {"state": "Active"}}}}
    assert frr_sessions(summary) == {"192.168.10.3": "Established",
                                             "192.168.10.4": "Active"}
    assert frr_sessions({}) == {}


def test_birdc_protocols() -> None:
    out = ("BIRD 2.0.12 ready.\n"
           "Name       Proto      Table      State  Since         Info\n"
           "device1    Device     ---        up     09:00:00.123\n"
           "rp0        BGP        ---        up     09:00:01.456  Established\n"
           "rp1        BGP        ---        start  09:00:01.456  Active        "
           "Socket: Connection refused\n")
    assert bird_sessions(out) == {"rp0": "Established", "rp1": "start"}


VALIDATORS = [("frr.conf", "vtysh", ["vtysh", "-C", "-f"]),
              ("frr-password.conf", "vtysh", ["vtysh", "-C", "-f"]),
              ("bird.conf", "bird", ["bird", "-p", "-c"])]


@pytest.mark.parametrize(("golden", "tool", "command"), VALIDATORS,
                         ids=[v[0] for v in VALIDATORS])
def test_golden_configs_pass_the_daemons_own_check(golden: str, tool: str,
                                                   command: list[str]) -> None:
    """FRR's and BIRD's own parsers (Debian's frr and bird2, no daemon started) accept the
    rendered files, and refuse a broken one (so the check can fail)."""
    import shutil
    import subprocess

    if shutil.which(tool) is None:
        package = "frr" if tool == "vtysh" else "bird2"
        pytest.skip(f"{tool} is not installed (Debian package {package})")
    good = subprocess.run([*command, str(GOLDEN / golden)], capture_output=True, text=True,
                          check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = GOLDEN.parent / f"broken-{golden}"
    text = (GOLDEN / golden).read_text()
    broken_text = text.replace("router bgp 64512", "router bgp 64512\n bgp no-such-knob") \
        if tool == "vtysh" else text.replace("protocol device { }", "protocol device { x }")
    try:
        broken.write_text(broken_text)
        bad = subprocess.run([*command, str(broken)], capture_output=True, text=True,
                             check=False)
    finally:
        broken.unlink()
    assert bad.returncode != 0


def test_route_targets_from_ip_json() -> None:
    out = ('[{"dst":"192.168.20.1","nhid":8,"protocol":"bgp"},'
           '{"dst":"192.168.20.0/28","protocol":"bgp"}]')
    assert route_targets(out) == {"192.168.20.1", "192.168.20.0/28"}
    assert route_targets("not json") == set()
