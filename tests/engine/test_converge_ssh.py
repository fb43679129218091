"""The engine against real sshd servers: check, apply, idempotence, faults, host keys."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from pathlib import Path

from runbooks.core import secrets
from runbooks.core.inventory import load_inventory
from runbooks.core.runner import Runbook, run_runbook, write_report
from runbooks.core.steps import Command, Directory, File, Handler, LineInFile, Plan, Tokens


def board_plan(root: Path, validate: str | None = None):
    """A small 'prepare a board' plan writing under root/<host>/."""

    def plan(ctx):
        d = f"{root}/{ctx.host.name}"
        return (
            Plan()
            .add(
                Directory(d),
                File(f"{d}/k8s.conf", "overlay\nbr_netfilter\n", notify=["count"]),
                File(f"{d}/dhcpd.conf", "good config\n", validate=validate),
                Tokens(f"{d}/cmdline.txt", ["cgroup_enable=memory", "cgroup_memory=1"]),
                # depends on the file the step before wrote: needs fresh facts
                LineInFile(f"{d}/cmdline.txt.note", "checked", notify=["count"]),
            )
            .handler(Handler("count", f"echo ran >> {d}/handler.log"))
        )

    return Runbook("board", ("pi",), plan)


def run(runbook, site, check=False, **kwargs):
    inv = load_inventory(site.inventory)
    out = io.StringIO()
    result = run_runbook(runbook, inv, inv.hosts.values(), check=check, out=out, **kwargs)
    return result, out.getvalue()


def test_check_shows_diffs_and_changes_nothing(site):
    (site.root / "alpha").mkdir()
    (site.root / "alpha" / "cmdline.txt").write_text("console=tty1 rootwait\n")
    result, out = run(board_plan(site.root), site, check=True)
    assert result.ok and result.hosts["alpha"].status == "changed"
    assert "+console=tty1 rootwait cgroup_enable=memory cgroup_memory=1" in out
    assert "would run handler: count" in out
    assert (site.root / "alpha" / "cmdline.txt").read_text() == "console=tty1 rootwait\n"
    assert sorted(p.name for p in (site.root / "alpha").iterdir()) == ["cmdline.txt"]
    assert not (site.root / "beta").exists()


def test_apply_converges_then_second_run_changes_nothing(site):
    first, _ = run(board_plan(site.root), site)
    assert first.ok and {r.status for r in first.hosts.values()} == {"changed"}
    for name in ("alpha", "beta"):
        d = site.root / name
        assert (d / "k8s.conf").read_text() == "overlay\nbr_netfilter\n"
        assert (d / "cmdline.txt").read_text() == "cgroup_enable=memory cgroup_memory=1\n"
        assert (d / "handler.log").read_text() == "ran\n"  # notified twice, ran once
    second, out = run(board_plan(site.root), site)
    assert second.ok and second.changed == 0, out
    assert {r.status for r in second.hosts.values()} == {"ok"}
    assert (site.root / "alpha" / "handler.log").read_text() == "ran\n"


def test_validator_failure_keeps_old_file_and_fails_the_host(site):
    d = site.root / "alpha"
    d.mkdir()
    (d / "dhcpd.conf").write_text("old config\n")
    result, out = run(board_plan(site.root, validate="grep -q nonsense {}"), site)
    alpha = result.hosts["alpha"]
    assert not result.ok and alpha.status == "failed"
    assert "validation failed" in (alpha.error or "")
    assert (d / "dhcpd.conf").read_text() == "old config\n"
    assert [p.name for p in d.iterdir() if ".greenroom." in p.name] == []
    # handlers of changes that were applied still ran
    assert (d / "handler.log").read_text() == "ran\n"


def test_unreachable_host_does_not_stop_the_others(site):
    site.write_inventory("  gamma: {address: 127.0.0.4, port: 9, roles: [pi]}\n")
    result, out = run(board_plan(site.root), site)
    assert result.hosts["gamma"].status == "unreachable"
    assert result.hosts["alpha"].status == result.hosts["beta"].status == "changed"
    assert not result.ok
    assert "unreachable: gamma" in out
    report = tmp_report = site.root.parent / "report.json"
    write_report(result, tmp_report)
    data = json.loads(report.read_text())
    assert data["ok"] is False
    assert data["hosts"]["gamma"]["status"] == "unreachable"
    assert data["hosts"]["alpha"]["changed"] == 6  # five steps and the handler
    step = data["hosts"]["alpha"]["steps"][1]
    assert set(step) >= {"name", "status", "changes"} and step["status"] == "changed"


def test_unknown_host_key_is_refused_with_fingerprint_then_accepted(site):
    known = site.home / ".ssh" / "known_hosts"
    known.write_text("")
    result, out = run(board_plan(site.root), site, check=True)
    assert {r.status for r in result.hosts.values()} == {"unreachable"}
    assert "unknown host key" in out and "SHA256:" in out and "--accept-new-host-keys" in out
    result, _ = run(board_plan(site.root), site, check=True, accept_new_host_keys=True)
    assert result.ok
    assert known.read_text().count("ssh-ed25519") == 2
    result, _ = run(board_plan(site.root), site, check=True)  # now known: no flag needed
    assert result.ok


def test_changed_host_key_is_always_refused(site, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    pub = Path(str(other) + ".pub").read_text().split()
    alpha = site.servers["alpha"]
    known = site.home / ".ssh" / "known_hosts"
    known.write_text(f"[{alpha.address}]:{alpha.port} {pub[0]} {pub[1]}\n"
                     + site.servers["beta"].known_hosts_line())
    result, out = run(board_plan(site.root), site, accept_new_host_keys=True)
    assert result.hosts["alpha"].status == "unreachable"
    assert "CHANGED" in out
    assert result.hosts["beta"].status == "changed"
    assert not (site.root / "alpha").exists()


def test_connection_lost_mid_apply_then_next_run_converges(site):
    marker = site.root / "killed-once"

    def plan(ctx):
        d = f"{site.root}/{ctx.host.name}"
        steps = [File(f"{d}/first.conf", "1\n"), File(f"{d}/second.conf", "2\n")]
        if ctx.host.name == "alpha":
            # kill this session's sshd process once, in the middle of the run
            steps.insert(1, Command("cut the link", f"touch {marker}; kill -9 $PPID",
                                    unless=f"test -e {marker}"))
        return Plan().add(*steps)

    runbook = Runbook("faults", ("pi",), plan)
    result, out = run(runbook, site)
    assert result.hosts["alpha"].status == "unreachable"  # its session died mid-command
    assert result.hosts["beta"].status == "changed"
    assert (site.root / "beta" / "second.conf").read_text() == "2\n"
    alpha = site.root / "alpha"
    assert (alpha / "first.conf").read_text() == "1\n"
    assert not (alpha / "second.conf").exists()
    assert [p.name for p in alpha.iterdir() if ".greenroom." in p.name] == []
    result, out = run(runbook, site)
    assert result.ok and (alpha / "second.conf").read_text() == "2\n", out


def test_secrets_never_reach_output_or_report(site):
    secrets.register("hunter2-token-xyz")

    def plan(ctx):
        d = f"{site.root}/{ctx.host.name}"
        return Plan().add(
            File(f"{d}/token", "hunter2-token-xyz\n", secret=True),
            Command("echo it", "echo hunter2-token-xyz >&2; exit 1", unless="false"),
        )

    result, out = run(Runbook("secret", ("pi",), plan), site)
    assert "hunter2" not in out
    report = site.root.parent / "r.json"
    write_report(result, report)
    assert "hunter2" not in report.read_text()
    assert (site.root / "alpha" / "token").read_text() == "hunter2-token-xyz\n"


def concurrency_probe(barrier: threading.Barrier | None):
    """A runbook whose plan records how many hosts are planning at once; with a barrier,
    every host must be inside at the same time (else the barrier breaks and hosts fail)."""
    lock = threading.Lock()
    seen = {"active": 0, "peak": 0}

    def plan(ctx):
        with lock:
            seen["active"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
        try:
            if barrier is not None:
                barrier.wait()
            else:
                time.sleep(0.3)  # room for a second host to come in, if the runner let it
        finally:
            with lock:
                seen["active"] -= 1
        return Plan()

    return Runbook("probe", ("pi",), plan), seen


def test_parallel_one_converges_hosts_one_after_the_other(site):
    runbook, seen = concurrency_probe(None)
    result, _ = run(runbook, site, parallel=1)
    assert result.ok and len(result.hosts) == 2 and seen["peak"] == 1


def test_parallel_two_converges_both_hosts_at_once(site):
    runbook, seen = concurrency_probe(threading.Barrier(2, timeout=20))
    result, out = run(runbook, site, parallel=2)
    assert result.ok, out  # one host at a time would have broken the barrier
    assert seen["peak"] == 2


def test_a_binary_file_travels_as_bytes_over_ssh(site):
    """k3s's release files go to the node as bytes (NUL and all), the sha256 checked there;
    such an action never joins a text batch."""
    import hashlib

    from runbooks.common.artifacts import Artifact
    from runbooks.core.steps import Plan

    data = bytes(range(256)) * 64
    local = site.root / "k3s-arm64"
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    def plan(ctx):
        return Plan().add(Artifact(str(site.root / ctx.host.name / "k3s"), lambda: local,
                                   digest, label="k3s-arm64 v1"))

    runbook = Runbook("release", ("pi",), plan)
    first, out = run(runbook, site)
    assert first.ok, out
    assert (site.root / "alpha" / "k3s").read_bytes() == data
    second, out = run(runbook, site)
    assert second.ok and second.changed == 0, out
