"""router (kind frr) and the BGP speaker double on the virtual lab: real FRR on the `edge`
guest, real BGP sessions from BIRD on the nodes, real routes, a laptop behind the router.

In file order, on freshly reset guests:
- `inv router --check` changes nothing; `inv router` installs FRR, turns bgpd on, writes a
  frr.conf validated by `vtysh -C`; a second run changes nothing;
- a config FRR refuses never replaces the running one;
- FRR runs in the router guest without CAP_SYS_ADMIN, and the guest still cannot touch the
  machine (safety);
- the speaker double on every node, configured from the MetalLB objects greenroom renders,
  reaches Established; a LoadBalancer IP bound on rp0 appears in the router's
  `ip route show proto bgp` and the laptop fetches its page through the router; with rp1
  announcing too, stopping rp0's speaker fails the route over to rp1; stopping rp1's
  withdraws it and the laptop gets nothing; `inv metallb.check` says so both times;
- `inv router --print` masks the password; `--to` writes it only to a 0600 file;
- a wrong ASN in the inventory is refused before anything runs.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.common.bgp import site_plan
from runbooks.common.bgp_state import frr_sessions
from runbooks.lab.doubles import bgp_speaker
from runbooks.metallb import crs
from runbooks.router import frr
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
ROUTER = "edge"
CLIENT = "laptop"  # metallb.check runs on ROUTER and CLIENT only: the audience on edge's LAN
# needs dell's route back, which this module does not converge (test_demo_cluster.py does)
LB_IP = "192.168.20.1"
RP0, RP1 = "192.168.10.3", "192.168.10.4"
FETCH = ("python3 -c \"import urllib.request as u; "
         f"print(u.urlopen('http://{LB_IP}/', timeout=3).read().decode().strip())\"")
CAP_SYS_ADMIN = 21


def sh(lab, host: str, cmd: str, timeout: float = 120) -> str:
    done = lab.exec(host, cmd, timeout=timeout)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def run_router(lab, check: bool = False):
    from runbooks.core.runner import run_runbook
    from runbooks.router.plan import RUNBOOK

    out = io.StringIO()
    inv = lab.inventory
    result = run_runbook(RUNBOOK, inv, [inv.hosts[ROUTER]], check=check, out=out)
    return result, out.getvalue()


def inv_task(lab, *args: str, inventory: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args,
                           "-i", inventory or str(lab.inventory.path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def bgp_routes(lab) -> str:
    return sh(lab, ROUTER, "ip route show proto bgp")


def next_hops(lab) -> dict[str, set[str]]:
    """The router's BGP routes: destination -> next-hop addresses (several with ECMP:
    `ip route` prints them on `nexthop via ...` lines under the route)."""
    hops: dict[str, set[str]] = {}
    current = ""
    for line in bgp_routes(lab).splitlines():
        words = line.split()
        if not words:
            continue
        if not line[0].isspace():
            current = words[0]
            hops[current] = set()
        hops[current].update(words[i + 1] for i, w in enumerate(words[:-1]) if w == "via")
    return hops


def sessions(lab) -> dict[str, str]:
    out = lab.exec(ROUTER, "vtysh -c 'show bgp summary json'").stdout
    try:
        return frr_sessions(json.loads(out))
    except ValueError:
        return {}


@pytest.fixture(scope="module")
def site(lab):
    for name in (ROUTER, CLIENT, "rp0", "rp1", "lp0"):
        lab.reset(name)
    return site_plan(lab.inventory)


def test_check_mode_on_a_fresh_router_changes_nothing(lab, site):
    result, out = run_router(lab, check=True)
    assert result.ok, out
    assert result.changed > 0 and "install frr" in out
    assert lab.exec(ROUTER, "test -e /etc/frr/frr.conf").returncode != 0


def test_router_converges_then_changes_nothing(lab, site):
    result, out = run_router(lab)
    assert result.ok and result.changed > 0, out
    assert "bgpd=yes" in sh(lab, ROUTER, "cat /etc/frr/daemons").splitlines()
    running = sh(lab, ROUTER, "pgrep -x zebra && pgrep -x bgpd")
    assert len(running.split()) == 2
    config = sh(lab, ROUTER, "vtysh -c 'show running-config'")
    for node in site.nodes:
        assert f"neighbor {node.address} peer-group METALLB" in config
    again, out2 = run_router(lab)
    assert again.ok and again.changed == 0, out2


def test_a_config_frr_refuses_never_replaces_the_old_one(lab, site):
    from runbooks.core.runner import Runbook, run_runbook
    from runbooks.core.steps import File, Plan

    before = sh(lab, ROUTER, "sha256sum /etc/frr/frr.conf")
    broken = sh(lab, ROUTER, "cat /etc/frr/frr.conf") + "router bgp 64512\n bgp no-such-knob\n"
    runbook = Runbook("broken-frr", ("router",), lambda ctx: Plan().add(
        File(frr.CONFIG, broken, mode="640", owner="frr", group="frr",
             validate=frr.VALIDATE)))
    out = io.StringIO()
    inv = lab.inventory
    result = run_runbook(runbook, inv, [inv.hosts[ROUTER]], out=out)
    assert not result.ok and "validation failed" in out.getvalue(), out.getvalue()
    assert sh(lab, ROUTER, "sha256sum /etc/frr/frr.conf") == before
    assert sh(lab, ROUTER, "ls -A /etc/frr | grep -c greenroom || true").strip() == "0"


def test_frr_runs_without_power_over_the_machine(lab, site):
    for daemon in ("zebra", "bgpd"):
        status = sh(lab, ROUTER, f"cat /proc/$(pgrep -x {daemon})/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        for key in ("CapBnd", "CapPrm", "CapEff"):
            assert not int(fields[key].strip(), 16) & (1 << CAP_SYS_ADMIN), (daemon, key)
    swappiness = Path("/proc/sys/vm/swappiness").read_text()
    assert lab.exec(ROUTER, "sysctl -w vm.swappiness=3").returncode != 0
    assert Path("/proc/sys/vm/swappiness").read_text() == swappiness
    assert lab.exec(ROUTER, "mount -t tmpfs edge-probe /mnt").returncode != 0
    assert "edge-probe" not in Path("/proc/mounts").read_text()
    assert lab.exec(ROUTER, "swapoff -a; swapon /etc/hostname").returncode != 0


def _speaker(lab, site, node: str) -> None:
    address = next(str(n.address) for n in site.nodes if n.name == node)
    routers = {r.name: r for r in site.routers}
    objects = crs.render(site.metallb, routers, site.metallb.password())
    config = bgp_speaker.render_config(node, address, objects)
    sh(lab, node, bgp_speaker.install_script(config), timeout=300)


def test_speakers_announce_a_loadbalancer_ip_the_laptop_reaches(lab, site):
    for node in site.nodes:
        _speaker(lab, site, node.name)
    assert wait_until(lambda: set(sessions(lab).values()) == {"Established"}
                      and len(sessions(lab)) == len(site.nodes), timeout=60), sessions(lab)
    sh(lab, "rp0", bgp_speaker.bind_script(LB_IP) + bgp_speaker.web_script(LB_IP, "rp0"))
    assert wait_until(lambda: next_hops(lab).get(LB_IP) == {RP0}, timeout=30), bgp_routes(lab)
    assert wait_until(lambda: lab.exec(CLIENT, FETCH).stdout.strip() == "rp0", timeout=20)
    assert "default via 192.168.10.6" in sh(lab, CLIENT, "ip route")
    checked = inv_task(lab, "metallb.check", "--address", LB_IP, "--host", f"{ROUTER},{CLIENT}")
    out = checked.stdout + checked.stderr
    assert checked.returncode == 0, out
    assert "session with rp0 (192.168.10.3): Established" in out
    assert f"http://{LB_IP}/ answers" in out


def test_route_fails_over_then_is_withdrawn(lab, site):
    sh(lab, "rp1", bgp_speaker.bind_script(LB_IP) + bgp_speaker.web_script(LB_IP, "rp1"))
    assert wait_until(lambda: next_hops(lab).get(LB_IP) == {RP0, RP1}, timeout=30), \
        bgp_routes(lab)
    sh(lab, "rp0", f"systemctl stop {bgp_speaker.UNIT}")
    assert wait_until(lambda: next_hops(lab).get(LB_IP) == {RP1}, timeout=30), bgp_routes(lab)
    # rp0 still serves on the IP, but the router sends the laptop to rp1 now
    assert wait_until(lambda: lab.exec(CLIENT, FETCH).stdout.strip() == "rp1", timeout=20)
    sh(lab, "rp1", f"systemctl stop {bgp_speaker.UNIT}")
    assert wait_until(lambda: LB_IP not in next_hops(lab), timeout=30), bgp_routes(lab)
    assert lab.exec(CLIENT, FETCH).returncode != 0
    checked = inv_task(lab, "metallb.check", "--address", LB_IP, "--host", f"{ROUTER},{CLIENT}")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"route to LoadBalancer IP {LB_IP}: none learned" in checked.stdout


def test_router_print_masks_the_password_and_writes_it_only_to_a_0600_file(lab, site,
                                                                           tmp_path):
    env = {"GREENROOM_BGP_PASSWORD": "lab-s3cret"}
    text = Path(lab.inventory.path).read_text().replace(
        "  peers: [edge]", "  peers: [edge]\n  password: {env: GREENROOM_BGP_PASSWORD}", 1)
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(text)
    target = tmp_path / "edge-frr.conf"
    done = subprocess.run([sys.executable, "-m", "invoke", "router", "--print", "--to",
                           str(target), "-i", str(inventory)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neighbor METALLB password ********" in done.stdout
    assert "lab-s3cret" not in done.stdout + done.stderr
    assert "neighbor METALLB password lab-s3cret" in target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_wrong_asn_is_refused_before_anything_runs(lab, site, tmp_path):
    text = Path(lab.inventory.path).read_text()
    assert "  asn: 64513" in text
    bad = tmp_path / "lab.yaml"
    bad.write_text(text.replace("  asn: 64513", "  asn: 4294967295", 1))
    before = sh(lab, ROUTER, "sha256sum /etc/frr/frr.conf")
    done = inv_task(lab, "router", inventory=str(bad))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "metallb.asn" in done.stdout + done.stderr
    assert sh(lab, ROUTER, "sha256sum /etc/frr/frr.conf") == before
