"""tests/support's process listing (secretaudit.processes, proc_lines, ArgvSampler), which the
secrets audit and the microk8s join-token test read every process's argv with."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.support.secretaudit import ArgvSampler, proc_lines, processes

# a sleep no other process on this machine runs: this run's own (another test run beside it,
# a second checkout's, would otherwise list its sleep too)
MARK = f"31.{os.getpid()}".encode()


def this_host() -> bytes:
    """This machine's host name as processes() reads it: its root's /etc/hostname."""
    try:
        return Path("/etc/hostname").read_bytes().strip()
    except OSError:
        return b"?"


def running(child: subprocess.Popen[bytes]) -> None:
    """Wait until `child` runs its command: Popen returns after the fork, and on a busy
    machine the child may still show this process's command line until its exec."""
    deadline = time.monotonic() + 10
    while (Path(f"/proc/{child.pid}/cmdline").read_bytes() != b"sleep\0" + MARK + b"\0"
           and time.monotonic() < deadline):
        time.sleep(0.005)


def ours(args: bytes) -> bool:
    return args == b"sleep " + MARK


def test_processes_lists_a_running_command_with_its_pid_and_host():
    child = subprocess.Popen(["sleep", MARK.decode()])
    try:
        running(child)
        found = list(processes(ours))
        assert found == [(child.pid, this_host(), b"sleep " + MARK)]
        assert b"\t".join([this_host(), b"sleep " + MARK]) in proc_lines()
    finally:
        child.kill()
        child.wait()
    assert list(processes(ours)) == []


def test_argv_sampler_keeps_only_the_lines_asked_for_until_stopped():
    with ArgvSampler(lambda args: MARK in args, every=0.001) as sampler:
        child = subprocess.Popen(["sleep", MARK.decode()])
        try:
            deadline = time.monotonic() + 10
            while not sampler.seen and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            child.kill()
            child.wait()
    assert sampler.seen == {(child.pid, f"sleep {MARK.decode()}"): this_host().decode()}
    samples = sampler.samples
    time.sleep(0.05)
    assert sampler.samples == samples  # stopped with the block
