"""SSH connections kept between runs (runbooks/core/keep_*), on the virtual lab's guests.

Keeping is on (GREENROOM_SSH_KEEP=60) with a keeper of this module's own (its own
XDG_RUNTIME_DIR), stopped at the end. New SSH connections are counted where they arrive:
sshd's "Accepted publickey" lines in each guest's journal.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from runbooks.core.inventory import load_inventory
from runbooks.core.keep_client import ask, running_keepers
from runbooks.core.runner import Runbook, run_runbook, write_report
from runbooks.core.steps import Command, File, Plan
from tests.support.keeping import own_keeper
from tests.support.secretaudit import PsSampler, hits, set_aside_given

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
PIS = ("rp0", "rp1", "lp0")
MARK = "/etc/greenroom-keep-test"
KILL_SESSIONS = "pkill -KILL -f '^sshd: root'"  # the connections' sshd, not the listener
PASSWORD = "Keep-sudo-4b7e21c9"


@pytest.fixture
def keeping(lab, tmp_path, monkeypatch):
    with own_keeper(tmp_path, monkeypatch):
        for name in PIS:
            lab.exec(name, f"rm -f {MARK} /run/keep-cut")
        yield lab
    for name in PIS:
        lab.exec(name, f"rm -f {MARK} /run/keep-cut")


def accepted(lab, host: str) -> int:
    """How many SSH connections the host's sshd has accepted so far."""
    done = lab.exec(host, "journalctl --no-pager -q _COMM=sshd | grep -c 'Accepted publickey'"
                          " || true")
    return int(done.stdout.strip() or 0)


def marker_plan(ctx):
    return Plan().add(File(MARK, "kept\n"))


def converge(path, hosts=PIS, plan=marker_plan):
    inv = load_inventory(path)
    out = io.StringIO()
    result = run_runbook(Runbook("keep", ("pi", "gateway"), plan), inv,
                         [inv.hosts[h] for h in hosts], out=out)
    return result, out.getvalue()


LAB = REPO / "hosts" / "lab.yaml"


def test_second_run_opens_no_connection_and_changes_nothing(keeping):
    first, out = converge(LAB)
    assert first.ok and first.changed == len(PIS), out
    before = {h: accepted(keeping, h) for h in PIS}
    second, out = converge(LAB)
    assert second.ok and second.changed == 0, out
    assert {h: accepted(keeping, h) for h in PIS} == before


def test_killed_sshd_between_runs_reconnects_once(keeping):
    converge(LAB)
    keeping.exec("lp0", KILL_SESSIONS)
    before = {h: accepted(keeping, h) for h in PIS}
    again, out = converge(LAB)
    assert again.ok, out
    after = {h: accepted(keeping, h) for h in PIS}
    assert {h: after[h] - before[h] for h in PIS} == {"rp0": 0, "rp1": 0, "lp0": 1}


def test_killed_sshd_during_a_run_is_unreachable_others_finish(keeping):
    converge(LAB, hosts=("rp1",))  # rp1 kept from an earlier run; lp0 opened in this one

    def plan(ctx):
        steps = [File(MARK, "kept\n")]
        if ctx.host.name == "lp0":
            steps.insert(0, Command("lose the connection", f"touch /run/keep-cut; {KILL_SESSIONS}",
                                    unless="test -e /run/keep-cut"))
        return Plan().add(*steps)

    result, out = converge(LAB, hosts=("lp0", "rp1", "rp0"), plan=plan)
    assert result.hosts["lp0"].status == "unreachable", out
    assert "unreachable: lp0" in out
    assert (result.hosts["rp1"].status, result.hosts["rp0"].status) == ("ok", "changed"), out
    again, out = converge(LAB, hosts=("lp0",), plan=plan)
    assert again.ok and again.hosts["lp0"].status == "changed", out


def test_changed_host_key_between_runs_is_refused(keeping, lab):
    converge(LAB, hosts=("rp1",))
    swapped = lab.exec("rp1", "mkdir -p /run/keep-keys && cp -a /etc/ssh/ssh_host_* "
                              "/run/keep-keys/ && rm -f /etc/ssh/ssh_host_* && ssh-keygen -A "
                              f"&& systemctl restart ssh && {KILL_SESSIONS}")
    try:
        assert swapped.returncode in (0, 1), swapped.stderr  # pkill: 1 when none was left
        result, out = converge(LAB, hosts=("rp1",))
        assert result.hosts["rp1"].status == "unreachable", out
        assert "host key of rp1 (10.231.0.4) has CHANGED" in out
    finally:
        lab.exec("rp1", "cp -a /run/keep-keys/ssh_host_* /etc/ssh/ && systemctl restart ssh")
    result, out = converge(LAB, hosts=("rp1",))
    assert result.ok, out


def keepers_of(folder: Path) -> list[int]:
    """pids of keeper processes listening in `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"runbooks.core.keep_server" in args and any(
                    a.startswith(str(folder).encode()) for a in args):
                found.append(int(entry.name))
    return found


def test_ssh_close_leaves_no_keeper(keeping, tmp_path, capsys):
    import time

    from invoke import Context

    import tasks as root

    converge(LAB, hosts=("rp0",))
    assert keepers_of(tmp_path / "run")
    root.ns["ssh.status"](Context())
    assert "rp0" in capsys.readouterr().out
    root.ns["ssh.close"](Context())
    assert "stopped 1 keeper(s)" in capsys.readouterr().out
    deadline = time.monotonic() + 10
    while keepers_of(tmp_path / "run") and time.monotonic() < deadline:
        try:
            os.waitpid(-1, os.WNOHANG)  # ours when this process started it: reap it
        except ChildProcessError:
            pass
        time.sleep(0.05)
    assert keepers_of(tmp_path / "run") == []


@pytest.fixture
def sudo_dell(lab):
    setup = (
        "{ id ubuntu >/dev/null 2>&1 || useradd -m -s /bin/sh ubuntu; } && "
        f"echo 'ubuntu:{PASSWORD}' | chpasswd && "
        "echo 'ubuntu ALL=(ALL) ALL' > /etc/sudoers.d/ubuntu && chmod 440 /etc/sudoers.d/ubuntu "
        "&& mkdir -p /home/ubuntu/.ssh && cp /root/.ssh/authorized_keys /home/ubuntu/.ssh/ && "
        f"chown -R ubuntu: /home/ubuntu/.ssh && rm -f {MARK}")
    done = lab.exec("dell", setup)
    assert done.returncode == 0, done.stderr
    yield "dell"
    lab.exec("dell", f"userdel -r ubuntu; rm -f /etc/sudoers.d/ubuntu {MARK}")


def test_sudo_password_never_leaks_with_keep(keeping, sudo_dell, tmp_path, monkeypatch,
                                             capfd):
    monkeypatch.setenv("GREENROOM_SUDO_PASSWORD", PASSWORD)
    lines = LAB.read_text().splitlines()
    lines.insert(lines.index("  dell:") + 1, "    user: ubuntu")
    path = tmp_path / "lab.yaml"
    path.write_text("\n".join(lines) + "\n")
    reports = []
    with PsSampler(keeping, ["dell"]) as ps:
        for n in range(2):
            result, out = converge(path, hosts=("dell",))
            assert result.ok, out
            print(out)
            write_report(result, tmp_path / f"report{n}.json")
            reports.append((tmp_path / f"report{n}.json").read_bytes())
        keeper = [ask(p, "status") for p in running_keepers()]
    assert result.hosts["dell"].changed == 0  # the second run: nothing to do
    assert keeping.exec("dell", f"stat -c %U {MARK}").stdout.strip() == "root"
    (status,) = keeper
    assert status is not None and [c["user"] for c in status["connections"]] == ["ubuntu"]
    out, err = capfd.readouterr()
    produced = {"stdout": out.encode(), "stderr": err.encode(), **ps.blobs(),
                **{f"report {n}": r for n, r in enumerate(reports)}}
    produced["environments in /proc"] = set_aside_given(
        produced["environments in /proc"], [os.getpid()], ["GREENROOM_SUDO_PASSWORD"])
    assert f"\t{status['pid']}\t".encode() in produced["environments in /proc"]  # sampled
    assert hits(produced, {"sudo password": PASSWORD}) == []
