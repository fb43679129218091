"""How a remote command ends, as the engine reports it (real sshd on loopback).

A command killed by a signal (sshd then sends `exit-signal`, no exit status) is a failed
command on a reachable host, named by its signal; only a connection that really went away is
"connection lost".
"""

from __future__ import annotations

import pytest

from runbooks.core.inventory import load_inventory
from runbooks.core.session import Connector, HostUnreachable


@pytest.fixture
def alpha(site):
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    yield connector.session(inv.hosts["alpha"])
    connector.close_all()


@pytest.mark.parametrize(("command", "rc", "signal"), [
    ("exit 3", 3, None),
    ("kill -KILL $$", 137, "KILL"),
    ("kill -TERM $$", 143, "TERM"),
    ("sh -c 'kill -HUP $$'; echo survived", 0, None),  # a child's death is the shell's rc
], ids=["exit-status", "shell-killed-KILL", "shell-killed-TERM", "child-killed-shell-goes-on"])
def test_exit_status_or_signal_is_reported(alpha, command, rc, signal):
    result = alpha.run(command)
    assert (result.rc, result.signal) == (rc, signal)
    if signal:
        assert f"killed by signal {signal} on alpha" in result.stderr
    assert alpha.run("echo still here").stdout == "still here\n"  # the session lives on


def test_connection_killed_under_a_command_is_a_lost_connection(alpha):
    with pytest.raises(HostUnreachable, match=r"alpha lost while a command ran \(the SSH "
                                              r"connection closed\)"):
        alpha.run("kill -KILL $PPID; sleep 5")


def test_a_command_past_its_timeout_is_cut_and_named(alpha):
    with pytest.raises(HostUnreachable, match=r"alpha did not answer within 1s"):
        alpha.run("sleep 30", timeout=1)


def test_wait_for_new_boot_bounds_each_probe(site, monkeypatch, tmp_path):
    """A host that hangs on the first "are you back?" costs one probe, not the whole wait:
    unbounded, the first probe would end after 30 s (past the 8 s wait) with the old boot."""
    from types import SimpleNamespace

    from runbooks.common import reboot

    count = tmp_path / "probes"
    monkeypatch.setattr(reboot, "BOOT_IDENTITY", (
        f"n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}; "
        "if [ $n = 0 ]; then sleep 30; echo old-boot; else echo new-boot; fi"))
    inv = load_inventory(site.inventory)
    ctx = SimpleNamespace(connector=Connector(inv), host=inv.hosts["alpha"], session=None,
                          rebooted=False)
    try:
        reboot.wait_for_new_boot(ctx, "old-boot", timeout=8, poll=0.1, probe_timeout=1)
        assert ctx.rebooted and ctx.session.run("echo ok").stdout == "ok\n"
        assert count.read_text() == "2\n"
    finally:
        ctx.connector.close_all()


@pytest.fixture
def slow_sends(monkeypatch):
    """Hold up our channel's EOF (and stdin data) on its way out, as a busy machine does:
    the host meanwhile ends the command and closes the channel."""
    import time

    import paramiko
    from paramiko.common import cMSG_CHANNEL_DATA, cMSG_CHANNEL_EOF

    original = paramiko.Transport._send_user_message

    def send(transport, message):
        kind = message.asbytes()[:1]
        if kind in (cMSG_CHANNEL_EOF, cMSG_CHANNEL_DATA) and transport is not \
                __import__("threading").current_thread():
            time.sleep(0.3)
        return original(transport, message)

    monkeypatch.setattr(paramiko.Transport, "_send_user_message", send)


@pytest.mark.parametrize("stdin", [None, b"unread input\n" * 100], ids=["eof", "stdin-data"])
def test_a_command_that_ends_before_our_eof_leaves_the_connection_up(alpha, slow_sends, stdin):
    """OpenSSH drops the whole connection when our EOF (or data) for a channel follows our
    CLOSE of it ("ieof packet referred to nonexistent channel"): the flake of demo.reset."""
    assert alpha.run("true", stdin=stdin).rc == 0
    assert alpha.run("echo still here").stdout == "still here\n"


def test_threads_asking_for_one_host_at_once_share_one_session(site):
    """A cluster runbook's nodes all read their first server at the same moment: one
    connection is opened, and every thread's commands run (no second open of the same
    connection replacing its transport mid-handshake)."""
    import threading

    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    sessions, errors = [], []

    def ask():
        try:
            session = connector.session(inv.hosts["alpha"])
            sessions.append(session)
            assert session.run("echo hi").stdout == "hi\n"
        except Exception as exc:  # noqa: BLE001 - collected, then asserted
            errors.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        connector.close_all()
    assert errors == [] and len(sessions) == 4 and len({id(s) for s in sessions}) == 1


@pytest.mark.parametrize("max_sessions", [10, 2], ids=["openssh-default", "sshd-serving-two"])
def test_more_commands_at_once_than_sshd_serves_wait_for_a_channel(tmp_path, max_sessions):
    """OpenSSH serves MaxSessions (10) channels at once per connection and refuses the next
    ("open failed"): demo.check runs every runbook's check of a host at once. With a host
    serving two, nearly every open is refused, many at the same moment: each refusal must
    still be seen as one (paramiko keeps one last error per connection)."""
    import threading
    from types import SimpleNamespace

    from tests.support.sshd import keygen, start_sshd

    key = keygen(tmp_path / "id_ed25519")
    server = start_sshd(tmp_path / "sshd", "127.0.0.4", key, max_sessions=max_sessions)
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    import fabric
    import paramiko

    from runbooks.core.session import Session

    conn = fabric.Connection(server.address, user="root", port=server.port, connect_kwargs={
        "key_filename": str(key), "look_for_keys": False, "allow_agent": False})
    conn.client.load_host_keys(str(tmp_path / "known_hosts"))
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    results, errors = [], []

    def run(n: int) -> None:
        try:
            results.append(session.run(f"sleep 0.3; echo {n}").stdout)
        except Exception as exc:  # noqa: BLE001 - collected, then asserted
            errors.append(repr(exc))

    try:
        conn.open()
        session = Session(SimpleNamespace(name="tight", user="root"), conn)
        threads = [threading.Thread(target=run, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        conn.close()
        server.stop()
    assert errors == [] and sorted(results) == sorted(f"{n}\n" for n in range(16))
