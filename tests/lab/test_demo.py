"""demo.rehearse, demo.check and demo.reset on the virtual lab, in file order.

1. demo.rehearse (lab.up + demo.reset) converges the lab from whatever state earlier tests
   left and says GO; a second demo.reset changes nothing and says GO; demo.check says GO.
2. Drift injected on real hosts: a board's swap back on (dphys-swapfile, the lab's double,
   and a swap line in fstab) and a cmdline argument removed, the registry's image deleted,
   stale leases from a burst of fake DHCP clients, a leftover reset target, a board's clock
   set back (the lab's clock DOUBLE: guests cannot set clocks) -> demo.check NO-GO naming
   each; demo.reset fixes each and says GO; live leases survive the pruning.
(Offline and unreachable hosts: test_demo_offline.py.)
"""

from __future__ import annotations

import json

import pytest
from invoke import Context, Exit

from runbooks.demo.tasks import check, rehearse, reset
from tests.lab.conftest import LAB_INVENTORY

pytestmark = pytest.mark.lab
INV = str(LAB_INVENTORY)
LEASES = "/var/lib/dhcp/dhcpd.leases"
OFFSET = "/var/lib/greenroom-double/clock-offset"
MICROVM_STATE = "/var/lib/greenroom-demo/microvms"  # hosts/lab.yaml's demo reset target
LOCK = LAB_INVENTORY.parents[1] / "files" / "demo" / "lab-images.lock"
IMAGE = "greenroom.invalid/lab/hello:1"
REGISTRY = "http://192.168.10.2:5001"


def call(task, tmp_path, name, **options):
    """Run a demo task in-process; (exit code, report dict)."""
    report = tmp_path / f"{name}.json"
    code = 0
    try:
        task(Context(), inventory=INV, report=str(report), **options)
    except Exit as exc:
        code = exc.code
    return code, json.loads(report.read_text()) if report.exists() else {}


def failing(data):
    """{(host, source, name)} of every failing check in a report."""
    return {(h["host"], c["source"], c["name"]) for h in data["hosts"] for c in h["checks"]
            if not c["ok"]}


def changed(data):
    return {(p["runbook"], host) for p in data["phases"] for host, h in p["hosts"].items()
            if h["changed"]}


def sh(lab, host, cmd, timeout=120):
    done = lab.exec(host, cmd, timeout=timeout)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def converged(lab, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("demo")
    # the timing history of these runs goes to a temp dir (not the lab's state: XDG_STATE_HOME
    # also locates the running lab)
    from runbooks.demo import history

    monkeypatch_module.setattr(history, "state_dir", lambda: tmp / "history")
    # the k3s runbook merges the lab's context into $KUBECONFIG: a temp one, not this machine's
    monkeypatch_module.setenv("KUBECONFIG", str(tmp / "kubeconfig"))
    code, data = call(rehearse, tmp, "rehearse")
    assert code == 0 and data["ok"], failing(data)
    # demo.reset starts with demo.check: on a lab earlier tests left converged it runs no
    # phases at all. Either way the final check holds k3s green on all three nodes (its
    # pinned version running, its unit active, and on rp0 every node Ready).
    k3s = {(h["host"], c["name"]) for h in data["hosts"] for c in h["checks"]
           if c["source"] == "k3s" and c["ok"]}
    assert {("rp0", "k3s version"), ("rp1", "k3s version"), ("lp0", "k3s version"),
            ("rp0", "k3s active"), ("rp1", "k3s-agent active"), ("lp0", "k3s-agent active"),
            ("rp0", "nodes Ready")} <= k3s, k3s
    if data["phases"]:  # it converged: k3s ran on all three
        converged = {(p["runbook"], host) for p in data["phases"] for host in p["hosts"]}
        assert {("k3s", "rp0"), ("k3s", "rp1"), ("k3s", "lp0")} <= converged, converged
    # the registry comes up first, so every k3s file a board lacked came from the gateway
    pulls = [(host, change) for p in data["phases"] if p["runbook"] == "k3s"
             for host, h in p["hosts"].items() for s in h["steps"] for change in s["changes"]
             if change.startswith(("install /", "replace /"))]
    assert all("from the gateway's registry" in change for _h, change in pulls), pulls
    return lab


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_converged_lab_resets_to_nothing_and_says_go(converged, tmp_path, capsys):
    code, again = call(reset, tmp_path, "again")
    assert code == 0 and again["ok"] is True
    assert changed(again) == set()
    code, checked = call(check, tmp_path, "check")
    assert code == 0 and failing(checked) == set()
    hosts = {h["host"] for h in checked["hosts"]}
    # the router and both clients too (the laptop on the VLAN, the audience on edge's LAN)
    assert hosts == {"dell", "rp0", "rp1", "lp0", "edge", "laptop", "audience"}
    out = capsys.readouterr().out
    assert "GO: every check on every host is green" in out
    # every step's time is shown next to its usual time, from the recorded history
    assert "usually" in out


def fake_clients(lab, count):
    """A burst of DHCP clients on the VLAN (macvlans of the microvm guest), then gone."""
    script = "; ".join(
        f"ip link add link eth0 name fk{i} type macvlan && ip link set fk{i} up && "
        f"timeout 15 dhclient -1 -sf /bin/true -pf /run/fk{i}.pid -lf /run/fk{i}.leases fk{i}; "
        f"dhclient -x -pf /run/fk{i}.pid; ip link del fk{i}" for i in range(count))
    sh(lab, "microvm", script, timeout=120)


def active_ips(lab):
    out = sh(lab, "dell", f"cat {LEASES}")
    from runbooks.dell_gateway.leases import active_leases, parse_leases

    return {str(le.ip) for le in active_leases(parse_leases(out))}


def test_drift_is_named_then_fixed(converged, tmp_path):
    lab = converged
    from runbooks.lab.seed import seed_dphys_swapfile

    live = active_ips(lab)  # the microvm client's own lease (it keeps renewing)
    fake_clients(lab, 3)
    stale = active_ips(lab) - live
    assert len(stale) == 3
    sh(lab, "rp0", f"mkdir -p {OFFSET.rsplit('/', 1)[0]} && echo -3600 > {OFFSET}")
    sh(lab, "rp0", "sed -i 's/ cgroup_memory=1//' /boot/firmware/cmdline.txt")
    seed_dphys_swapfile(lab.state_dir / "hosts" / "rp1" / "root")
    sh(lab, "rp1", "systemctl daemon-reload && systemctl start dphys-swapfile && "
                   "printf '/swapfile\\tnone\\tswap\\tsw\\t0\\t0\\n' >> /etc/fstab")
    sh(lab, "lp0", f"mkdir -p {MICROVM_STATE}/vm1 && touch {MICROVM_STATE}/vm1/disk")
    digest = json.loads(LOCK.read_text())["images"][IMAGE]["pushed"]["linux/arm64"]
    sh(lab, "dell", f"curl -sf -X DELETE {REGISTRY}/v2/lab/hello/manifests/{digest}")

    code, found = call(check, tmp_path, "drift")
    assert code == 1 and found["ok"] is False
    bad = failing(found)
    assert {("rp0", "demo", "clock"), ("rp0", "pi-prep", "drift"),
            ("rp1", "pi-prep", "swap off"), ("rp1", "pi-prep", "drift"),
            ("lp0", "demo.workloads", "leftover"), ("dell", "registry.up", "images"),
            ("dell", "dell-gateway.leases", "leftover")} <= bad, bad
    details = {(h["host"], c["source"], c["name"]): c["detail"]
               for h in found["hosts"] for c in h["checks"]}
    assert "cgroup_memory=1" in details[("rp0", "pi-prep", "drift")]
    assert all(ip in details[("dell", "dell-gateway.leases", "leftover")] for ip in stale)
    assert "lab/hello:1 missing" in details[("dell", "registry.up", "images")]

    code, fixed = call(reset, tmp_path, "fix")
    assert code == 0 and fixed["ok"] is True, failing(fixed)
    assert active_ips(lab) == live  # stale ones gone, the live one kept
    assert lab.exec("lp0", f"test -e {MICROVM_STATE}/vm1").returncode != 0
    assert "cgroup_memory=1" in sh(lab, "rp0", "cat /boot/firmware/cmdline.txt")
    assert sh(lab, "rp1", "systemctl is-active dphys-swapfile || true").strip() != "active"
    accept = "Accept: application/vnd.oci.image.manifest.v1+json"  # an OCI image
    assert sh(lab, "dell", f"curl -s -o /dev/null -w '%{{http_code}}' -I -H '{accept}' "
                           f"{REGISTRY}/v2/lab/hello/manifests/1") == "200"
    code, again = call(reset, tmp_path, "again")
    assert code == 0 and changed(again) == set()
