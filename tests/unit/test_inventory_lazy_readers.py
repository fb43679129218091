"""An inventory without the cluster, MetalLB or demo sections does not import their readers
(runbooks.common.kube_cluster, microk8s_cluster, bgp, demo_section: about 12 ms of CPU at
every start of a `pi` fleet's run); with the section, or hosts that need it, it does, and
checks it as before. Each case in a fresh interpreter: imports are per process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READERS = ("runbooks.common.kube_cluster", "runbooks.common.microk8s_cluster",
           "runbooks.common.bgp", "runbooks.common.demo_section")
HEAD = """\
site: lazy
defaults: {user: root}
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/24
  gateway: 192.168.10.1
  dhcp: {range: [192.168.10.100, 192.168.10.200], dns: [192.168.10.1]}
"""
PI = "hosts:\n  b1: {address: 192.168.10.11, roles: [pi]}\n"
K3S = "hosts:\n  s1: {address: 192.168.10.11, roles: [k3s-server]}\n"

CHILD = """
import json, sys
from runbooks.core.inventory import InventoryError, load_inventory
try:
    inv = load_inventory(sys.argv[1])
    problems = []
except InventoryError as error:
    inv, problems = None, [str(p) for p in error.problems]
print(json.dumps({"imported": [m for m in json.loads(sys.argv[2]) if m in sys.modules],
                  "problems": problems,
                  "sections": sorted(inv.sections) if inv else None}))
"""


def _load(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(READERS)],
                          cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_pi_fleet_imports_no_section_reader(tmp_path):
    got = _load(tmp_path, HEAD + PI)
    assert got == {"imported": [], "problems": [], "sections": []}


@pytest.mark.parametrize("extra, reader", [
    ("cluster: {version: v1.34.1+k3s1}\n", "runbooks.common.kube_cluster"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable}\n",
     "runbooks.common.microk8s_cluster"),
    ("metallb: {version: v0.14.8, mode: l2, pools: [192.168.10.240-192.168.10.250]}\n",
     "runbooks.common.bgp"),
    ("demo: {workloads: {namespaces: [podinfo]}}\n", "runbooks.common.demo_section"),
], ids=["k3s-cluster", "microk8s-cluster", "metallb", "demo"])
def test_a_section_present_imports_its_reader(tmp_path, extra, reader):
    got = _load(tmp_path, HEAD + extra + PI)
    assert reader in got["imported"]


def test_k3s_hosts_without_a_cluster_section_are_still_rejected(tmp_path):
    got = _load(tmp_path, HEAD + K3S)
    assert got["imported"] == ["runbooks.common.kube_cluster"]
    assert any("need a top-level `cluster:` section" in p for p in got["problems"])


def test_a_bad_demo_section_is_still_rejected_with_its_key(tmp_path):
    got = _load(tmp_path, HEAD + "demo: {workloads: [podinfo]}\n" + PI)
    assert got["problems"] and all(":" in p and "demo" in p for p in got["problems"])


def test_no_demo_section_still_reads_as_the_defaults(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(HEAD + PI)
    code = textwrap.dedent("""
        import sys
        from runbooks.common.demo_section import Section, section_of
        from runbooks.core.inventory import load_inventory
        print(section_of(load_inventory(sys.argv[1])) == Section())
    """)
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
