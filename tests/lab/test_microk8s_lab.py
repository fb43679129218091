"""inv microk8s on its own virtual lab (hosts/lab-microk8s.yaml: mk0 seed, mk1, mk2 worker).

Doubles (runbooks/lab/doubles/microk8s): `snap` and `microk8s`. Real: the launch
configuration file (written before the install), the group, the hold, the order, the token
flow (fresh single-use tokens, never in our output), the recovery of a half-joined node, the
kubeconfig merge read back with Debian's `kubectl config`, idempotence, check and reset.
The tests run in file order on one lab brought up for this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from runbooks.microk8s import config as cfg
from tests.lab.conftest import LabHandle, lab_skip_reason

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "hosts" / "lab-microk8s.yaml"
NODES = ("mk0", "mk1", "mk2")
STATE = "/var/snap/microk8s/current/var/greenroom-double/cluster.json"
CALLS = "/var/log/greenroom-double-microk8s.calls"
OTHER = """\
apiVersion: v1
kind: Config
clusters: [{name: work, cluster: {server: 'https://10.9.9.9:6443'}}]
users: [{name: work, user: {token: keep-me}}]
contexts: [{name: work, context: {cluster: work, user: work}}]
current-context: work
"""


@pytest.fixture(scope="module")
def mlab(tmp_path_factory):
    """hosts/lab-microk8s.yaml brought up for this module, taken down after it."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from runbooks.core.inventory import load_inventory
    from runbooks.lab import control

    inventory = load_inventory(str(INVENTORY))
    control.up(inventory, log=lambda _msg: None)
    try:
        handle = LabHandle(inventory)
        for name in NODES:
            handle.reset(name)
        handle.kubeconfig = tmp_path_factory.mktemp("mk8s") / "kubeconfig"  # type: ignore
        handle.kubeconfig.write_text(OTHER)  # type: ignore[attr-defined]
        yield handle
    finally:
        control.down(inventory, log=lambda _msg: None)


def run(lab, runbook: str = "RUNBOOK", check: bool = False):  # noqa: ANN001, ANN201
    from runbooks.core.runner import run_runbook
    from runbooks.microk8s import plan

    inv = lab.inventory
    out = io.StringIO()
    result = run_runbook(getattr(plan, runbook), inv, [inv.hosts[n] for n in NODES],
                         check=check, parallel=3, out=out,
                         options={"timeout": 30, "kubeconfig_path": lab.kubeconfig})
    return result, out.getvalue()


def sh(lab: LabHandle, host: str, cmd: str) -> str:
    done = lab.exec(host, cmd)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def issued_tokens(lab: LabHandle) -> dict:
    return json.loads(sh(lab, "mk0", f"cat {STATE}"))["tokens"]


def assert_no_token_in(text: str, lab: LabHandle) -> None:
    hashes = set(issued_tokens(lab))
    assert hashes, "no token was issued"
    for candidate in re.findall(r"[0-9a-f]{32}", text):
        assert hashlib.sha256(candidate.encode()).hexdigest() not in hashes


def kubectl(lab, *args: str) -> str:  # noqa: ANN001
    return subprocess.run(["kubectl", "config", *args, "--kubeconfig", str(lab.kubeconfig)],
                          capture_output=True, text=True, check=True).stdout


def test_converge_three_nodes(mlab) -> None:  # noqa: ANN001
    result, out = run(mlab)
    assert result.ok, out
    cluster = mlab.inventory.sections["cluster"]
    wanted = cfg.launch_yaml(cluster, None)
    for name in NODES:
        assert sh(mlab, name, f"cat {cfg.CONFIG}") == wanted
        calls = sh(mlab, name, f"cat {CALLS}").splitlines()
        install = next(i for i, c in enumerate(calls) if " snap install " in c)
        digest = hashlib.sha256(wanted.encode()).hexdigest()
        assert f"[launch configuration at install: {digest}]" in calls[install], calls
        assert "--channel=1.32/stable" in calls[install]
        hold = next(i for i, c in enumerate(calls) if "snap refresh --hold microk8s" in c)
        assert hold > install
        assert "classic,held" in sh(mlab, name, "snap list microk8s")
        assert "microk8s" in sh(mlab, name, "id -nG root").split()
        assert sh(mlab, name, "stat -c %U /root/.kube").strip() == "root"
    joins = {n: [c for c in sh(mlab, n, f"cat {CALLS}").splitlines() if " join " in c]
             for n in ("mk1", "mk2")}
    assert joins["mk1"][-1].endswith("microk8s join 192.168.30.3:25000/<token>"), joins
    assert joins["mk2"][-1].endswith("microk8s join 192.168.30.3:25000/<token> --worker")
    state = json.loads(sh(mlab, "mk0", f"cat {STATE}"))
    assert state["nodes"] == {"mk0": {"worker": False}, "mk1": {"worker": False},
                              "mk2": {"worker": True}}
    assert len(state["tokens"]) == 2 and all(t["used"] for t in state["tokens"].values())
    assert set(state["addons"]) == {"dns", "hostpath-storage", "ingress"}
    assert_no_token_in(out + json.dumps(result.as_report()), mlab)
    assert sorted(kubectl(mlab, "get-contexts", "-o", "name").split()) == ["labmk8s", "work"]
    assert kubectl(mlab, "view", "-o", "jsonpath={.clusters[?(@.name==\"labmk8s\")]"
                   ".cluster.server}") == "https://192.168.30.3:16443"
    assert kubectl(mlab, "current-context").strip() == "work"


def test_second_run_changes_nothing(mlab) -> None:  # noqa: ANN001
    result, out = run(mlab)
    assert result.ok and result.changed == 0, out
    check, out = run(mlab, "CHECK")
    assert check.ok, out


def test_half_joined_worker_is_removed_and_joined_again(mlab) -> None:  # noqa: ANN001
    # a join that failed half-way: the seed knows mk2, mk2 is not in the cluster
    sh(mlab, "mk2", "rm /var/snap/microk8s/current/var/lock/clustered.lock")
    result, out = run(mlab)
    assert result.ok, out
    assert "remove the half-joined mk2 on mk0" in out
    assert "microk8s remove-node mk2 --force" in sh(mlab, "mk0", f"cat {CALLS}")
    assert_no_token_in(out, mlab)
    again, out = run(mlab)
    assert again.ok and again.changed == 0, out


def test_join_refuses_wrong_and_used_tokens(mlab) -> None:  # noqa: ANN001
    token = json.loads(sh(mlab, "mk0", "microk8s add-node --format json"))["token"]
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    wrong = mlab.exec("mk1", "microk8s join 192.168.30.3:25000/" + "0" * 32)
    assert wrong.returncode == 1 and "Invalid token" in wrong.stderr
    sh(mlab, "mk1", f"microk8s join 192.168.30.3:25000/{token}")
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    used = mlab.exec("mk1", f"microk8s join 192.168.30.3:25000/{token}")
    assert used.returncode == 1 and "already used" in used.stderr
    result, out = run(mlab)  # mk1 unknown to the seed and not joined: joined again
    assert result.ok and result.changed > 0, out


def test_changed_launch_configuration_is_applied_with_snap_set(mlab) -> None:  # noqa: ANN001
    # the installed snap last read an older launch configuration
    sh(mlab, "mk1", f"echo 0000 > {cfg.STAMP}")
    result, out = run(mlab)
    assert result.ok and result.changed == 1, out
    assert sh(mlab, "mk1", f"grep -c 'snap set microk8s config=' {CALLS}").strip() == "1"
    again, out = run(mlab)
    assert again.changed == 0, out


def test_reset_lists_then_removes_everything(mlab) -> None:  # noqa: ANN001
    listed, out = run(mlab, "RESET", check=True)
    assert "snap remove --purge microk8s" in out
    assert "microk8s" in sh(mlab, "mk0", "snap list microk8s")
    result, out = run(mlab, "RESET")
    assert result.ok, out
    for name in NODES:
        assert mlab.exec(name, "snap list microk8s").returncode == 1
        assert mlab.exec(name, "test -e /var/snap/microk8s").returncode == 1
    again, out = run(mlab, "RESET")
    assert again.changed == 0, out
