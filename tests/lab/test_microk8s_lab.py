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
from tests.lab.conftest import LabHandle, lab_up
from tests.support.kubeconfig import kubectl_config, users_own_kubeconfig
from tests.support.secretaudit import ArgvSampler

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "hosts" / "lab-microk8s.yaml"
NODES = ("mk0", "mk1", "mk2")
STATE = "/var/snap/microk8s/current/var/greenroom-double/cluster.json"
CALLS = "/var/log/greenroom-double-microk8s.calls"
TOKENS = "/var/snap/microk8s/current/credentials/cluster-tokens.txt"
AGENT = "snap.microk8s.daemon-cluster-agent"
@pytest.fixture(scope="module")
def mlab(tmp_path_factory):
    """hosts/lab-microk8s.yaml brought up for this module, taken down after it."""
    with lab_up(INVENTORY) as handle:
        for name in NODES:
            handle.reset(name)
        handle.kubeconfig = tmp_path_factory.mktemp("mk8s") / "kubeconfig"  # type: ignore
        users_own_kubeconfig(handle.kubeconfig)  # type: ignore[attr-defined]
        yield handle


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
    return kubectl_config(lab.kubeconfig, *args)


def test_converge_three_nodes(mlab) -> None:  # noqa: ANN001
    sh(mlab, "mk1", "useradd --create-home ubuntu")  # the image's default user
    result, out = run(mlab)
    assert result.ok, out
    # the seed's board preparation
    for name in NODES:
        assert mlab.exec(name, "id -u ubuntu").returncode == 1
        assert "sudo" in sh(mlab, name, "id -nG ada").split()
        assert "(ALL : ALL) NOPASSWD: ALL" in sh(mlab, name, "sudo -l -U ada")
        assert sh(mlab, name, "cat /home/ada/.ssh/authorized_keys") == \
            sh(mlab, name, "cat /root/.ssh/authorized_keys")
        assert sh(mlab, name, "stat -c '%U %a' /home/ada/.ssh").split() == ["ada", "700"]
        assert sh(mlab, name, "sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables"
                              " net.bridge.bridge-nf-call-ip6tables").split() == ["1"] * 3
        assert sh(mlab, name, "cat /etc/sysctl.d/k8s.conf").splitlines() == [
            "net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1",
            "net.bridge.bridge-nf-call-ip6tables = 1"]
        assert sh(mlab, name, "cat /etc/modules-load.d/k8s.conf") == "br_netfilter\n"
    assert mlab.exec("mk1", "test -e /home/ubuntu").returncode == 1
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
    assert len(state["tokens"]) == 2, "one token per joining node"
    assert all(t["ttl"] == -1 for t in state["tokens"].values()), "single-use tokens only"
    assert sh(mlab, "mk0", f"cat {TOKENS}") == "", "every token used"
    assert set(state["addons"]) == {"dns", "hostpath-storage", "ingress"}
    ingress = json.loads(sh(mlab, "mk0", "microk8s kubectl get service ingress -n ingress "
                                         "-o json"))["spec"]
    assert (ingress["type"], ingress["loadBalancerIP"], ingress["selector"]) == (
        "LoadBalancer", "192.168.30.240", {"name": "nginx-ingress-microk8s"})
    assert [(p["name"], p["port"], p["targetPort"]) for p in ingress["ports"]] == [
        ("http", 80, 80), ("https", 443, 443)]
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
    check = token.partition("/")[2]
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    wrong = mlab.exec("mk1", f"microk8s join 192.168.30.3:25000/{'0' * 32}/{check}")
    assert wrong.returncode == 1 and "Invalid token" in wrong.stderr
    other_seed = mlab.exec("mk1", f"microk8s join 192.168.30.3:25000/{token[:32]}/{'0' * 12}")
    assert other_seed.returncode == 1 and "certificate check failed" in other_seed.stderr
    sh(mlab, "mk1", f"microk8s join 192.168.30.3:25000/{token}")
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    used = mlab.exec("mk1", f"microk8s join 192.168.30.3:25000/{token}")
    assert used.returncode == 1 and "already used" in used.stderr
    result, out = run(mlab)  # mk1 unknown to the seed and not joined: joined again
    assert result.ok and result.changed > 0, out


def holds_a_token(args: bytes) -> bool:
    """A command line with a 32-hex candidate (a join token's first part)."""
    return re.search(rb"[0-9a-f]{32}", args) is not None


def test_join_token_is_in_no_argv_but_the_joins_own_and_is_spent_by_then(mlab) -> None:  # noqa: ANN001
    # mk1 out of the cluster on both sides: the run issues a token and joins it again
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    before = set(issued_tokens(mlab))
    with ArgvSampler(holds_a_token) as sampler:
        result, out = run(mlab)
    assert result.ok, out
    new = set(issued_tokens(mlab)) - before
    assert len(new) == 1, "one fresh token for mk1"
    holding = {}
    for (_pid, line), where in sampler.seen.items():
        for candidate in re.findall(r"[0-9a-f]{32}", line):
            if hashlib.sha256(candidate.encode()).hexdigest() in new:
                holding[line] = (where, candidate)
    assert holding, f"the join's own argv was never sampled ({sampler.samples} samples)"
    for line, (where, _token) in holding.items():
        assert where == "mk1", f"token in a process on {where}: {line}"
        assert re.search(r"microk8s join 192\.168\.30\.3:25000/[0-9a-f]{32}/[0-9a-f]+$",
                         line), f"token in a command line that is not the join: {line}"
        assert not line.startswith(("sh -c", "/bin/sh -c")), line
    assert "microk8s add-node --format json" in sh(mlab, "mk0", f"cat {CALLS}")
    assert sh(mlab, "mk0", f"cat {TOKENS}") == ""
    # what a local observer could read in ps was spent before it could be used
    token = next(iter(holding.values()))[1]
    seen_line = next(iter(holding))
    check = re.search(token + r"/([0-9a-f]+)", seen_line).group(1)  # type: ignore[union-attr]
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    reuse = mlab.exec("mk1", f"microk8s join 192.168.30.3:25000/{token}/{check}")
    assert reuse.returncode == 1 and "already used" in reuse.stderr, reuse.stderr
    again, out = run(mlab)
    assert again.ok, out


def test_failed_join_revokes_its_unused_token(mlab) -> None:  # noqa: ANN001
    sh(mlab, "mk0", "microk8s remove-node mk1 --force")
    sh(mlab, "mk1", "microk8s leave")
    sh(mlab, "mk0", f"systemctl stop {AGENT}")  # the seed's cluster agent does not answer
    try:
        result, out = run(mlab)
        assert not result.ok, out
        assert "`microk8s join` to mk0 failed: Connection failed" in out
        assert "`microk8s inspect` on mk1 says" in out and "Report tarball is at" in out
        assert sh(mlab, "mk0", f"cat {TOKENS}") == "", "the unused token is still valid"
        assert_no_token_in(out + json.dumps(result.as_report()), mlab)
    finally:
        sh(mlab, "mk0", f"systemctl reset-failed {AGENT} 2>/dev/null; systemd-run "
                        f"--unit={AGENT} /usr/bin/python3 "
                        "/usr/local/lib/greenroom-double/microk8s.py agent")
    again, out = run(mlab)
    assert again.ok, out


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


def test_offline_install_from_the_pinned_cache(mlab, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """`inv microk8s.fetch` from the lab's release site (a mirror of `snap download`), then
    `inv microk8s` with offline: true on the clean nodes: the pinned files pushed from this
    machine's cache, `snap ack` before `snap install ./microk8s_<rev>.snap`, no store."""
    import sys

    from runbooks.core.inventory import load_inventory
    from runbooks.core.runner import run_runbook
    from runbooks.lab.doubles.microk8s import snapfiles
    from runbooks.lab.release import URL
    from runbooks.microk8s import plan

    text = INVENTORY.read_text().replace(
        "  channel: 1.32/stable\n",
        f"  channel: 1.32/stable\n  offline: true\n  source: {URL}/microk8s\n")
    offline = tmp_path / "offline-mk8s.yaml"
    offline.write_text(text)
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    inv = [str(Path(sys.executable).with_name("inv")), "microk8s.fetch", "-i", str(offline)]
    first = subprocess.run(inv, cwd=ROOT, env=env, capture_output=True, text=True)
    rev = snapfiles.revision("1.32/stable")
    assert first.returncode == 0 and f"revision {rev}: downloaded and pinned" in first.stdout, \
        first.stdout + first.stderr
    second = subprocess.run(inv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert "already cached, matches the lock" in second.stdout, second.stdout + second.stderr
    lock = json.loads((tmp_path / "offline-mk8s.microk8s.lock").read_text())
    assert lock["channels"]["1.32/stable"]["revision"] == rev

    inventory = load_inventory(str(offline))

    def converge() -> tuple:  # noqa: ANN202
        out = io.StringIO()
        result = run_runbook(plan.RUNBOOK, inventory, [inventory.hosts[n] for n in NODES],
                             parallel=3, out=out, options={"timeout": 30,
                                                           "kubeconfig_path": None})
        return result, out.getvalue()

    result, out = converge()
    assert result.ok, out
    for name in NODES:
        calls = sh(mlab, name, f"cat {CALLS}").splitlines()
        ack = max(i for i, c in enumerate(calls) if f"snap ack ./microk8s_{rev}.assert" in c)
        install = max(i for i, c in enumerate(calls) if " snap install " in c)
        assert ack < install and f"snap install ./microk8s_{rev}.snap --classic" in \
            calls[install] and "--channel" not in calls[install], calls
        listed = sh(mlab, name, "snap list microk8s").splitlines()[1].split()
        assert listed[2] == rev and listed[3] == "-" and listed[-1] == "classic,held"
    again, out = converge()
    assert again.ok and again.changed == 0, out

    # -- the same files served from the gateway's registry (here on mk0, the lab twin has no
    # gateway): pushed there once, each node pulls what it lacks, sha256 checked on the node
    from runbooks.microk8s.offline import NODE_CACHE, RELEASE
    from runbooks.registry.converge import UP

    served = tmp_path / "served-mk8s.yaml"
    served.write_text(text.replace("site: labmk8s\n", "site: labmk8s\nregistry: {host: mk0, "
                                   "port: 5001, runtime: package}\n", 1).replace(
        "roles: [microk8s]\n    board: raspberrypi\n    vlan: {parent: eth0, address: "
        "192.168.30.3/24}", "roles: [microk8s, registry]\n    board: raspberrypi\n    vlan: "
        "{parent: eth0, address: 192.168.30.3/24}", 1))
    (tmp_path / "served-mk8s.microk8s.lock").write_text(
        (tmp_path / "offline-mk8s.microk8s.lock").read_text())
    inventory = load_inventory(str(served))
    gateway = [inventory.hosts["mk0"]]
    up = run_runbook(UP, inventory, gateway, out=io.StringIO())
    assert up.ok, up.as_report()
    for name in NODES:
        sh(mlab, name, f"rm {NODE_CACHE}/microk8s_{rev}.snap")
    pushed = run_runbook(RELEASE, inventory, gateway, out=io.StringIO())
    report = pushed.as_report()
    changes = [c for s in report["hosts"]["mk0"]["steps"] for c in s["changes"]]
    assert pushed.ok and len([c for c in changes if c.startswith("push ")]) == 3, report
    assert changes[-1].startswith(f"tag greenroom/microk8s-snap:1.32-stable-{rev}"), changes
    result, out = converge()
    assert result.ok, out
    report = result.as_report()
    digest = lock["channels"]["1.32/stable"]["files"][f"microk8s_{rev}.snap"]
    for name in NODES:
        changes = [c for s in report["hosts"][name]["steps"] for c in s["changes"]]
        pulled = [c for c in changes if c.startswith(f"install {NODE_CACHE}/microk8s_{rev}.snap")]
        assert pulled and "from the gateway's registry http://192.168.30.3:5001" in pulled[0], \
            changes
        assert sh(mlab, name, f"sha256sum {NODE_CACHE}/microk8s_{rev}.snap").split()[0] == \
            digest
    assert digest in sh(mlab, "mk0", "journalctl -u docker-registry --no-pager -o cat | "
                                     "grep 'GET /v2/greenroom/microk8s-snap/blobs' || true")
    assert run_runbook(RELEASE, inventory, gateway, out=io.StringIO()).changed == 0
    again, out = converge()
    assert again.ok and again.changed == 0, out


def test_a_cut_in_the_middle_of_a_join_leaves_the_nodes_whole(mlab, tmp_path) -> None:  # noqa: ANN001
    """The fault campaign's seeded cut for microk8s (tests/support/faulttrials.py): mk1's
    SSH session killed while `microk8s join` runs with its single-use token, mk0 and mk2
    going on. The recap names mk1, the others finish, every file written on mk1 is whole,
    the next run joins it (the seed's half-join removed) and a second changes nothing."""
    from tests.support import faultsubjects
    from tests.support.faulttrials import trial

    outcome = trial(mlab, faultsubjects.microk8s(tmp_path), r"microk8s join", 0.05)
    assert not outcome.missed, f"the cut did not land ({outcome.status}):\n{outcome.text}"
    assert outcome.problems == [], f"{outcome.problems}\n{outcome.text}"
