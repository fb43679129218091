"""Connections kept between runs by the keeper, against real sshd on loopback.

Each test has its own keeper (its own XDG_RUNTIME_DIR), stopped at its end. "A run" is a
Connector of its own, as each `inv` process has: sessions opened, commands run, close_all.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from runbooks.core.inventory import load_inventory
from runbooks.core.keep_client import KeptSession
from runbooks.core.session import Connector, HostKeyRefused, HostUnreachable
from tests.support.keeping import own_keeper


def children(pid: int) -> set[int]:
    """The pids whose parent is `pid` (sshd forks one per connection)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.fixture
def kept(site, tmp_path, monkeypatch):
    """Keeping on (60 s) with a keeper of this test's own; stopped afterwards."""
    with own_keeper(tmp_path, monkeypatch):
        yield site


def one_run(site, command: str = "echo hello", hosts=("alpha", "beta")):
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    try:
        return {name: connector.session(inv.hosts[name]).run(command) for name in hosts}
    finally:
        connector.close_all()


def test_a_second_run_opens_no_new_connection(kept):
    first = one_run(kept)
    before = {n: children(s.process.pid) for n, s in kept.servers.items()}
    second = one_run(kept)
    after = {n: children(s.process.pid) for n, s in kept.servers.items()}
    assert [r.stdout for r in first.values()] == [r.stdout for r in second.values()] == \
        ["hello\n", "hello\n"]
    assert after == before
    assert all(len(pids) == 1 for pids in after.values())


def test_binary_output_and_stdin_round_trip(kept):
    inv = load_inventory(kept.inventory)
    connector = Connector(inv)
    session = connector.session(inv.hosts["alpha"])
    assert isinstance(session, KeptSession)
    result = session.run("cat; printf '\\377\\000x' >&2; exit 7", stdin=b"a\x00b\xff")
    connector.close_all()
    assert (result.rc, result.stdout, result.stderr) == (
        7, "a\x00b\ufffd", "\ufffd\x00x")


def test_killed_connection_between_runs_is_reopened(kept):
    one_run(kept)
    (served,) = children(kept.servers["alpha"].process.pid)
    os.kill(served, signal.SIGKILL)
    time.sleep(0.5)
    assert one_run(kept)["alpha"].stdout == "hello\n"
    assert served not in children(kept.servers["alpha"].process.pid)


def test_connection_lost_during_a_command_is_unreachable_not_resent(kept, tmp_path):
    marker = tmp_path / "ran"
    inv = load_inventory(kept.inventory)
    connector = Connector(inv)
    session = connector.session(inv.hosts["alpha"])
    with pytest.raises(HostUnreachable, match="alpha lost while a command ran"):
        session.run(f"echo x >> {marker}; kill -KILL $PPID; sleep 5")
    connector.close_all()
    assert marker.read_text() == "x\n"  # ran once, never sent again


def test_a_changed_host_key_is_refused_when_reopening(kept):
    one_run(kept, hosts=("alpha",))
    server = kept.servers["alpha"]
    # the host "reinstalled": its known key no longer matches, its connection gone
    known = kept.home / ".ssh" / "known_hosts"
    other = kept.servers["beta"]
    pub = Path(str(other.host_key) + ".pub").read_text().split()
    lines = [line for line in known.read_text().splitlines()
             if not line.startswith(f"[{server.address}]")]
    known.write_text("\n".join([*lines, f"[{server.address}]:{server.port} {pub[0]} {pub[1]}"])
                     + "\n")
    with pytest.raises(HostKeyRefused, match="has CHANGED"):
        one_run(kept, hosts=("alpha",))


def test_forget_drops_the_kept_connection(kept):
    inv = load_inventory(kept.inventory)
    connector = Connector(inv)
    connector.session(inv.hosts["alpha"]).run("true")
    (first,) = children(kept.servers["alpha"].process.pid)
    connector.forget(inv.hosts["alpha"])
    connector.session(inv.hosts["alpha"]).run("true")
    connector.close_all()
    deadline = time.monotonic() + 10  # the dropped connection's sshd is on its way out
    while first in children(kept.servers["alpha"].process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children(kept.servers["alpha"].process.pid) - {first}) == 1


def test_a_port_forward_gets_this_processs_own_transport(kept):
    """demo's image push forwards a port over the session's transport: a kept session
    opens the process's own connection for it, on first use, closed with the run."""
    inv = load_inventory(kept.inventory)
    connector = Connector(inv)
    session = connector.session(inv.hosts["alpha"])
    assert isinstance(session, KeptSession)
    pid = kept.servers["alpha"].process.pid
    assert len(children(pid)) == 1  # the keeper's only
    transport = session.connection.transport
    assert transport.is_active() and session.connection.transport is transport
    assert len(children(pid)) == 2
    connector.close_all()
    assert not transport.is_active()


def test_two_runs_starting_at_once_share_one_keeper(kept):
    import threading

    results = []
    start = threading.Barrier(2)

    def run():
        start.wait()
        results.append(one_run(kept))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r["alpha"].stdout for r in results] == ["hello\n", "hello\n"]
    keepers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and
               b"runbooks.core.keep_server" in _cmdline(p)
               and os.environ["XDG_RUNTIME_DIR"].encode() in _cmdline(p)]
    assert len(keepers) == 1
    assert all(len(children(s.process.pid)) == 1 for s in kept.servers.values())


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
