"""xen-dom0 on its own virtual lab (hosts/lab-xen.yaml): a systemd guest `xen0` made into a
dom0, two "domU" DHCP clients behind its private bridge, the upstream behind its public one.

Real here: the packages (through the lab's apt proxy), GRUB's drop-in as update-grub sources
it, ifupdown making the bridges, dnsmasq@virbr1 serving DHCP, nftables masquerade and DNAT,
the reboot. Doubles (runbooks/lab/doubles/xl): `xl`, the hypervisor's boot, `update-grub`.
The tests run in file order on one lab brought up for this module.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tests.lab.conftest import LabHandle, lab_up
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "hosts" / "lab-xen.yaml"
DOM0 = "xen0"
UPSTREAM_ADDRESS = "10.232.1.2"   # xenbr0's address (the lab's first upstream address)


@pytest.fixture(scope="module")
def xlab():
    """hosts/lab-xen.yaml brought up for this module, taken down after it."""
    with lab_up(INVENTORY) as handle:
        yield handle


def run(lab: LabHandle, inventory=None, check: bool = False):  # noqa: ANN001, ANN201
    from runbooks.core.runner import run_runbook
    from runbooks.xen_dom0.plan import RUNBOOK

    inv = inventory or lab.inventory
    out = io.StringIO()
    result = run_runbook(RUNBOOK, inv, [inv.hosts[DOM0]], check=check, out=out)
    return result, out.getvalue()


def sh(lab: LabHandle, host: str, cmd: str) -> str:
    done = lab.exec(host, cmd)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def inv_task(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args, "-i", str(INVENTORY)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def settings(lab: LabHandle):  # noqa: ANN201
    from runbooks.xen_dom0.settings import read_settings

    return read_settings(lab.inventory.site, DOM0, dict(lab.inventory.hosts[DOM0].vars))


def test_check_mode_changes_nothing(xlab):
    # a hand setup of old left this divert behind (the seed's dpkg-divert trick)
    sh(xlab, DOM0, "dpkg-divert --divert /etc/grub.d/08_linux_xen --rename "
                   "/etc/grub.d/20_linux_xen")
    result, out = run(xlab, check=True)
    assert result.hosts[DOM0].status == "changed", out
    assert "+++ /etc/default/grub.d/xen.cfg" in out
    assert "would change: Ensure the host runs Xen" in out
    assert xlab.exec(DOM0, "dpkg-query -W xen-system-amd64").returncode != 0
    assert xlab.exec(DOM0, "ip link show virbr1").returncode != 0


def test_converges_with_one_reboot_into_xen(xlab):
    boot_before = sh(xlab, DOM0, "cat /proc/sys/kernel/random/boot_id; "
                                 "awk '{print $22}' /proc/1/stat")
    result, out = run(xlab)
    host = result.hosts[DOM0]
    assert result.ok, out
    assert "handler: reboot" in [s.name for s in host.steps], out
    assert "bring up virbr1 with ifup" in out and "bring up xenbr0 with ifup" in out
    assert sh(xlab, DOM0, "cat /proc/sys/kernel/random/boot_id; "
                          "awk '{print $22}' /proc/1/stat") != boot_before
    info = sh(xlab, DOM0, "xl info")
    assert "dom0_mem=1024M,max:1024M dom0_max_vcpus=1 dom0_vcpus_pin" in info
    assert sh(xlab, DOM0, "dpkg-query -W -f '${Status}' xen-system-amd64") == \
        "install ok installed"
    assert sh(xlab, DOM0, "dpkg-divert --list '*linux_xen*'") == ""
    # the packages came through the lab's apt proxy, which keeps them for the next install
    proxy_log = (xlab.state_dir / "aptproxy.log").read_text()
    assert any(word in line for line in proxy_log.splitlines() if "/xen-hypervisor-" in line
               for word in ("cache store", "cache hit"))


def test_grub_drop_in_as_update_grub_sources_it(xlab):
    sourced = sh(xlab, DOM0, "sh -c 'gettext() { printf %s \"$1\"; }; "
                             "grub_warn() { echo WARN \"$@\" >&2; }; . /etc/default/grub; "
                             "for f in /etc/default/grub.d/*.cfg; do . \"$f\"; done; "
                             "printf \"%s|%s|%s\" \"$GRUB_CMDLINE_XEN_DEFAULT\" "
                             "\"$XEN_OVERRIDE_GRUB_DEFAULT\" \"$GRUB_DEFAULT\"' 2>&1")
    assert sourced == ("dom0_mem=1024M,max:1024M dom0_max_vcpus=1 dom0_vcpus_pin|1|"
                       "Debian GNU/Linux, with Xen hypervisor")
    calls = [json.loads(line) for line in
             sh(xlab, DOM0, "cat /var/log/update-grub.calls").splitlines()]
    assert calls[-1]["default"] == "Debian GNU/Linux, with Xen hypervisor"
    xendomains = sh(xlab, DOM0, "grep ^XENDOMAINS_ /etc/default/xendomains")
    assert "XENDOMAINS_SAVE=\n" in xendomains and "XENDOMAINS_RESTORE=false" in xendomains
    assert 'vif.default.bridge="virbr1"' in sh(xlab, DOM0, "cat /etc/xen/xl.conf")


def test_bridges_made_by_ifupdown(xlab):
    assert "inet 192.168.100.1/24" in sh(xlab, DOM0, "ip -4 addr show dev virbr1")
    assert f"inet {UPSTREAM_ADDRESS}/24" in sh(xlab, DOM0, "ip -4 addr show dev xenbr0")
    assert "master xenbr0" in sh(xlab, DOM0, "ip link show dev eth1")
    assert "inet " not in sh(xlab, DOM0, "ip -4 addr show dev eth1")
    assert "bridge_ports none" in sh(xlab, DOM0, "cat /etc/network/interfaces.d/greenroom-xen")
    assert sh(xlab, DOM0, "ifup --no-act --all 2>&1; echo rc=$?").endswith("rc=0\n")


def test_dnsmasq_instance_per_bridge(xlab):
    assert sh(xlab, DOM0, "systemctl is-active dnsmasq@virbr1").strip() == "active"
    state = xlab.exec(DOM0, "systemctl is-enabled dnsmasq; systemctl is-active dnsmasq")
    assert state.stdout.split() == ["disabled", "inactive"]
    assert "192.168.100.1:53" in sh(xlab, DOM0, "ss -H -lun")


def _addresses(lab: LabHandle, client: str) -> list[IPv4Address]:
    out = lab.exec(client, "ip -4 -o addr show dev eth0").stdout
    return [IPv4Address(w.split("/")[0]) for w in out.split() if "/" in w and w[0].isdigit()]


def test_domus_get_their_reserved_and_a_dynamic_address(xlab):
    reserved = next(r for r in settings(xlab).private[0].reservations if r.name == "domu1")
    assert reserved.generated and reserved.mac.startswith("00:16:3e:")
    sh(xlab, DOM0, "printf 'name = \"domu1\"\\nvif = [ \"mac=%s\" ]\\n' "
                   f"{reserved.mac} > /etc/xen/domu1.cfg && xl create /etc/xen/domu1.cfg")
    assert "master virbr1" in sh(xlab, DOM0, "ip link show dev vif1.0")
    sh(xlab, "domu1", f"ip link set eth0 down && ip link set eth0 address {reserved.mac} && "
                      "ip link set eth0 up")
    for client in ("domu1", "domu2"):
        for pid in xlab.exec(client, "pidof dhclient").stdout.split():
            xlab.exec(client, f"kill {int(pid)}")
    assert wait_until(lambda: reserved.ip in _addresses(xlab, "domu1"), 60), \
        sh(xlab, "domu1", "tail -20 /var/log/dhclient.log")
    low, high = settings(xlab).private[0].dhcp_range or (None, None)
    assert wait_until(lambda: any(low <= a <= high for a in _addresses(xlab, "domu2")), 60), \
        sh(xlab, "domu2", "tail -20 /var/log/dhclient.log")
    done = inv_task("xen-dom0.leases", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    leases = {x["ip"]: x["mac"] for x in json.loads(done.stdout)}
    assert leases[str(reserved.ip)] == reserved.mac
    assert len(leases) == 2


def test_a_domu_reaches_the_upstream_through_the_masquerade(xlab):
    before = len(xlab.upstream_log())
    page = sh(xlab, "domu1", f"curl -sS -m 10 http://{xlab.plan.upstream_gateway.ip}/")
    assert "hello" in page
    assert xlab.upstream_log()[before:] == [UPSTREAM_ADDRESS]


def test_a_port_forward_reaches_a_server_in_a_domu(xlab):
    sh(xlab, "domu1", "mkdir -p /srv/www && echo domu1-web > /srv/www/index.html && "
                      "(cd /srv/www && nohup python3 -m http.server 80 >/dev/null 2>&1 &)")
    url = f"http://{UPSTREAM_ADDRESS}:8080/index.html"
    curl = ["ip", "netns", "exec", xlab.plan.upstream_ns, "curl", "-sS", "-m", "3", url]

    def served() -> bool:
        done = subprocess.run(curl, capture_output=True, text=True, check=False)
        return done.stdout.strip() == "domu1-web"

    assert wait_until(served, 20)


def test_check_is_healthy(xlab):
    done = inv_task("xen-dom0.check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEALTHY" in done.stdout and "forward tcp/8080" in done.stdout


def test_second_run_changes_nothing(xlab):
    result, out = run(xlab)
    assert result.ok and result.changed == 0, out


def test_a_config_dnsmasq_refuses_never_replaces_the_old_one(xlab, tmp_path):
    from runbooks.core.inventory import load_inventory

    conf = "/var/lib/dnsmasq/virbr1/dnsmasq.conf"
    before = sh(xlab, DOM0, f"cat {conf}")
    broken = tmp_path / INVENTORY.name   # same file name: same generated headers
    shutil.copy(INVENTORY, broken)
    text = broken.read_text().replace(
        "          dhcp_range: [192.168.100.100, 192.168.100.199]\n",
        "          dhcp_range: [192.168.100.100, 192.168.100.199]\n"
        "          dnsmasq_options: [\"dhcp-range=not-an-address\"]\n")
    broken.write_text(text)
    result, out = run(xlab, inventory=load_inventory(str(broken)))
    assert not result.ok
    assert "validation failed" in out and "dnsmasq --test" in out, out
    assert sh(xlab, DOM0, f"cat {conf}") == before
    assert sh(xlab, DOM0, "systemctl is-active dnsmasq@virbr1").strip() == "active"
    result, out = run(xlab)
    assert result.ok and result.changed == 0, out


def test_a_cut_after_the_grub_drop_in_owes_update_grub_and_the_reboot(xlab):
    """The fault campaign's seeded cut for xen-dom0 (tests/support/faulttrials.py): the dom0's
    SSH session killed just after Xen's GRUB drop-in was written, before update-grub and
    the reboot ran. The recap names xen0, every file written is its old or new content, the
    next run runs the owed update-grub and reboot into Xen, a second changes nothing."""
    from tests.support import faultsubjects
    from tests.support.faulttrials import trial

    # the batch that writes the drop-in (a staged write names itself in a comment)
    outcome = trial(xlab, faultsubjects.xen_dom0(),
                    r'(?:mv -f "\$tmp"|# greenroom writes) /etc/default/grub\.d/xen\.cfg', 0.05)
    assert not outcome.missed, f"the cut did not land ({outcome.status}):\n{outcome.text}"
    assert outcome.problems == [], f"{outcome.problems}\n{outcome.text}"
