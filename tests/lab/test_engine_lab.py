"""The engine on the virtual lab: sudo for a non-root user, `via` jumps, a killed sshd."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from runbooks.core.inventory import load_inventory
from runbooks.core.runner import Runbook, run_runbook
from runbooks.core.steps import Command, File, Plan

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Greenroom-sudo-7f3a"


def inventory_with(tmp_path: Path, host: str, extra: str) -> Path:
    """hosts/lab.yaml with `extra` keys added to one host's entry."""
    lines = (REPO / "hosts" / "lab.yaml").read_text().splitlines()
    start = lines.index(f"  {host}:")
    lines.insert(start + 1, f"    {extra}")
    path = tmp_path / "lab.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def converge(path: Path, host: str, plan) -> tuple[object, str]:
    inv = load_inventory(path)
    out = io.StringIO()
    result = run_runbook(Runbook("t", ("gateway", "pi"), plan), inv, [inv.hosts[host]], out=out)
    return result, out.getvalue()


@pytest.fixture
def sudo_user(lab):
    setup = (
        "id ubuntu >/dev/null 2>&1 || useradd -m -s /bin/sh ubuntu && "
        f"echo 'ubuntu:{PASSWORD}' | chpasswd && "
        "echo 'ubuntu ALL=(ALL) ALL' > /etc/sudoers.d/ubuntu && chmod 440 /etc/sudoers.d/ubuntu && "
        "mkdir -p /home/ubuntu/.ssh && cp /root/.ssh/authorized_keys /home/ubuntu/.ssh/ && "
        "chown -R ubuntu: /home/ubuntu/.ssh && rm -f /etc/greenroom-sudo-test /tmp/ps-during-run"
    )
    done = lab.exec("dell", setup)
    assert done.returncode == 0, done.stderr
    yield "dell"
    lab.exec("dell", "userdel -r ubuntu; rm -f /etc/sudoers.d/ubuntu /etc/greenroom-sudo-test")


def test_sudo_password_works_and_never_shows(lab, sudo_user, tmp_path, monkeypatch):
    monkeypatch.setenv("GREENROOM_SUDO_PASSWORD", PASSWORD)
    path = inventory_with(tmp_path, sudo_user, "user: ubuntu")

    def plan(ctx):
        return Plan().add(
            File("/etc/greenroom-sudo-test", "written as root through sudo\n", mode="600"),
            # what every process on the host shows while greenroom works
            Command("snapshot the process list", "ps -eo args > /tmp/ps-during-run",
                    unless="false", verify=False),
        )

    result, out = converge(path, sudo_user, plan)
    assert result.ok, out
    assert PASSWORD not in out
    stat = lab.exec(sudo_user, "stat -c '%U %a' /etc/greenroom-sudo-test").stdout.split()
    assert stat == ["root", "600"]
    ps = lab.exec(sudo_user, "cat /tmp/ps-during-run").stdout
    assert "sudo" in ps and PASSWORD not in ps


def test_wrong_sudo_password_fails_clearly(lab, sudo_user, tmp_path, monkeypatch):
    monkeypatch.setenv("GREENROOM_SUDO_PASSWORD", "not-the-password")
    path = inventory_with(tmp_path, sudo_user, "user: ubuntu")
    result, out = converge(path, sudo_user, lambda ctx: Plan().add(
        File("/etc/greenroom-sudo-test", "x\n")))
    assert result.hosts[sudo_user].status == "failed"
    assert "sudo refused the password" in out
    assert "not-the-password" not in out
    assert lab.exec(sudo_user, "test -e /etc/greenroom-sudo-test").returncode == 1


def test_via_reaches_a_board_through_the_gateway(lab, tmp_path):
    path = inventory_with(tmp_path, "rp1", "via: dell")

    def plan(ctx):
        return Plan().add(Command("who connects", "echo $SSH_CLIENT > /tmp/via-client",
                                  unless="false", verify=False))

    result, out = converge(path, "rp1", plan)
    assert result.ok, out
    client = lab.exec("rp1", "cat /tmp/via-client").stdout.split()[0]
    dell = load_inventory(path).hosts["dell"].address
    assert client == dell  # the TCP connection came from the gateway, not the machine


def test_killed_sshd_mid_apply_then_next_run_converges(lab):
    # runs with connections kept (the default): `pkill -9 sshd` kills the sshd serving the
    # keeper's connection too, so this also proves a kept connection lost mid-command is
    # reported unreachable and opened again by the next run
    host = "lp0"
    for name in (host, "rp1"):  # both start without the files, so both have work to do
        lab.exec(name, "rm -f /etc/greenroom-fault-* /run/fault-done")
    inv = load_inventory(REPO / "hosts" / "lab.yaml")

    def plan(ctx):
        steps = [File("/etc/greenroom-fault-1", "one\n"), File("/etc/greenroom-fault-2", "two\n")]
        if ctx.host.name == host:
            steps.insert(1, Command("lose the connection", "touch /run/fault-done; pkill -9 sshd",
                                    unless="test -e /run/fault-done"))
        return Plan().add(*steps)

    runbook = Runbook("fault", ("pi",), plan)
    targets = [inv.hosts[host], inv.hosts["rp1"]]
    result = run_runbook(runbook, inv, targets, out=io.StringIO())
    assert result.hosts[host].status == "unreachable"  # its sshd died mid-command
    assert result.hosts["rp1"].status == "changed"
    assert lab.exec(host, "cat /etc/greenroom-fault-1").stdout == "one\n"
    leftovers = lab.exec(host, "ls -a /etc | grep -c '[.]greenroom[.]' || true").stdout
    assert leftovers.strip() in ("0", "")
    # systemd brings sshd back (Restart=on-failure); the next run converges the host
    deadline = threading.Event()
    for _ in range(50):
        if lab.exec(host, "systemctl is-active ssh").stdout.strip() == "active":
            break
        lab.exec(host, "systemctl start ssh")
        deadline.wait(0.2)
    again = run_runbook(runbook, inv, [inv.hosts[host]], out=io.StringIO())
    assert again.ok and lab.exec(host, "cat /etc/greenroom-fault-2").stdout == "two\n"
    lab.exec(host, "rm -f /etc/greenroom-fault-* /run/fault-done")
    lab.exec("rp1", "rm -f /etc/greenroom-fault-* /run/fault-done")


def test_runbook_against_a_lab_that_is_down_fails_at_once(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root like every lab test")
    text = (REPO / "hosts" / "lab.yaml").read_text().replace("site: lab", "site: gone")
    path = tmp_path / "gone.yaml"
    path.write_text(text)
    from runbooks.lab.access import LabNotRunning

    inv = load_inventory(path)
    with pytest.raises(LabNotRunning, match="the virtual lab is not running: run `inv lab.up`"):
        run_runbook(Runbook("t", ("pi",), lambda ctx: Plan()), inv, inv.hosts.values(),
                    out=io.StringIO())
