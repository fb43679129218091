"""Cut connections on hosts/lab.yaml: a few seeded cut points per runbook (dell-gateway,
registry, pi-prep, router, k3s), each the real kill of the sshd processes serving
greenroom's session with the host, in the middle of a converging run.

After each cut (tests/support/faulttrials.py): the recap names the host unreachable or
failed, the other hosts finish, every file greenroom was writing holds its old or its new
content, the lease database and the registry's storage are intact, and the next run
converges with a second run at zero changes. The 20-trials-per-runbook campaign is
bench/faults/run.py (results in bench/README.md).
"""

from __future__ import annotations

import pytest

from tests.support import faultsubjects
from tests.support.faultcut import Write, half_written
from tests.support.faulttrials import trial

pytestmark = pytest.mark.lab

# (runbook, command number the cut falls on, seconds after it was sent): chosen from the
# campaign's trials so that each lands in the middle of a write, an install or a restart
CUTS = [
    # during the package install: the next run must wait for the apt the cut left running
    # (campaign trial router #20; it failed with "Could not get lock" before the wait)
    ("router", 1, 0.19),
    # after frr.conf was written, before FRR restarted: the restart is owed, not lost
    ("router", 9, 0.2),
    # the drifted gateway's run: after /etc/default/isc-dhcp-server, before dhcpd restarted
    ("dell-gateway", 4, 0.2),
    ("registry", 6, 0.02),
    ("pi-prep", 12, 0.05),
    ("k3s", 8, 0.05),
]


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    return faultsubjects.lab_subjects(tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize(("name", "at", "delay"), CUTS, ids=[f"{c[0]}-{c[1]}" for c in CUTS])
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
