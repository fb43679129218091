"""Cut connections on hosts/lab.yaml: a few seeded cut points per runbook (dell-gateway,
registry, pi-prep, router, k3s, metallb; microk8s's and xen-dom0's are in their own labs'
modules, test_microk8s_lab.py and test_xen_dom0_lab.py), each the real kill of the sshd
processes serving greenroom's session with the host, in the middle of a converging run.

After each cut (tests/support/faulttrials.py): the recap names the host unreachable or
failed, the other hosts finish, every file greenroom was writing holds its old or its new
content, the lease database and the registry's storage are intact, every cluster object
is as before the run or as after recovery, and the next run converges with a second run at
zero changes. The 20-trials-per-runbook campaign is
bench/faults/run.py (results in bench/README.md).
"""

from __future__ import annotations

import pytest

from tests.support import faultsubjects
from tests.support.faultcut import Write, half_written
from tests.support.faulttrials import trial

pytestmark = pytest.mark.lab

# the command that writes a file: a write of its own (its content on stdin, `mv -f "$tmp"
# PATH`) or a batch's staged write (named in a comment, runbooks.core.steps.files)
WRITES = r'(?:mv -f "\$tmp"|# greenroom writes) '

# (runbook, where the cut falls: the first command whose text matches, seconds after it was
# sent): each in the middle of an install, a write or before a restart, found by the campaign
CUTS = [
    # during the package install: the next run must wait for the apt the cut left running
    # (campaign trial router #20 failed with "Could not get lock" before that wait)
    ("router", r"apt-get install", 0.19),
    # just after frr.conf was sent, before FRR restarted: the restart is owed, not lost
    ("router", WRITES + r"/etc/frr/frr\.conf", 0.2),
    # the drifted gateway: dhcpd's files rewritten, dhcpd not yet restarted; live leases
    ("dell-gateway", WRITES + r"/etc/default/isc-dhcp-server", 0.1),
    # registry.up installing the package over storage that holds an image
    ("registry", r"apt-get install", 0.5),
    # a board among three, its containerd config on the way
    ("pi-prep", WRITES + r"/etc/containerd/config\.toml", 0.05),
    # an agent's k3s binary on its way while the first server waits for every node Ready:
    # the server and the other agent finish, the cut agent is named (was: the server failed)
    ("k3s", r'(?m)mv -f "\$tmp" /usr/local/bin/k3s$', 0.05),
    # inv metallb on the cluster k3s left (the trial above): MetalLB's manifest on its way
    # to `kubectl apply`, then the pools, peer and advertisement while the webhook still
    # refuses them (the apply's backoff loop): every object as before or as after recovery
    ("metallb", r'"kind": "CustomResourceDefinition"', 0.05),
    ("metallb", r'"kind": "BGPAdvertisement", "metadata": \{"name": "greenroom"', 1.5),
]


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    return faultsubjects.lab_subjects(tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize(("name", "at", "delay"), CUTS,
                         ids=["router-install", "router-restart", "dell-gateway", "registry",
                              "pi-prep", "k3s", "metallb-manifest", "metallb-crs"])
def test_cut_mid_converge_leaves_the_host_whole(lab, subjects, name, at, delay):
    outcome = trial(lab, subjects[name], at, delay)
    assert not outcome.missed, f"the cut did not land ({outcome.status}):\n{outcome.text}"
    assert outcome.problems == [], f"{outcome.problems}\n{outcome.text}"


def test_the_judge_sees_a_half_written_file(lab):
    """Negative control: a file that is neither its old nor its new content is reported."""
    lab.exec("edge", "printf 'half of the new' > /etc/greenroom-fault-probe")
    write = Write("/etc/greenroom-fault-probe", "absent", "0" * 64)
    try:
        assert half_written(lab, "edge", [write]) == [
            "/etc/greenroom-fault-probe: sha256 "
            f"{lab.exec('edge', 'sha256sum /etc/greenroom-fault-probe').stdout[:12]} "
            "is neither the old nor the new content"]
    finally:
        lab.exec("edge", "rm -f /etc/greenroom-fault-probe")
