"""The connection keeper without SSH: identities, its directory, who may talk to it, the
wire, idle exit, its name per code version, the fallback, and what its process is given."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.core import keep_client, keep_paths, keep_server, keep_wire
from runbooks.core.errors import UsageError
from runbooks.core.keep_paths import KeepDirRefused, code_version, keep_seconds, private_dir
from runbooks.core.keep_server import Keeper, identity_key
from runbooks.core.session import SUDO_PASSWORD_ENV, CommandResult, HostUnreachable

HOST = SimpleNamespace(name="alpha", address="10.0.0.2", port=22, user="root", via=None)


def ident(**changes):
    base = keep_client.identity(HOST, key="/k/id", known_hosts="/k/known",
                                extra_known_hosts=None, accept_new=False, timeout=10.0)
    return {**base, **changes}


# -- identity -------------------------------------------------------------------------------

@pytest.mark.parametrize("change", [
    {"address": "10.0.0.3"}, {"port": 2222}, {"user": "pi"}, {"key": "/k/other"},
    {"key_mtime": 1}, {"known_hosts": "/k/other_known"}, {"extra_known_hosts": "/lab/kh"},
    {"known_mtimes": [1, None]}, {"accept_new": True}, {"timeout": 3.0},
], ids=["address", "port", "user", "key-file", "key-mtime", "known-hosts", "extra-known-hosts",
        "known-hosts-mtime", "accept-new", "connect-timeout"])
def test_any_part_of_the_identity_is_another_connection(change):
    assert identity_key(ident(**change)) != identity_key(ident())


def test_the_same_identity_is_the_same_connection():
    assert identity_key(ident()) == identity_key(dict(reversed(list(ident().items()))))


# -- the directory ----------------------------------------------------------------------------

def _world(p: Path) -> None:
    p.mkdir()
    p.chmod(0o777)


def _group(p: Path) -> None:
    p.mkdir()
    p.chmod(0o770)


def _link(p: Path) -> None:
    (p.parent / "real").mkdir(mode=0o700)
    p.symlink_to(p.parent / "real")


def _other_owner(p: Path) -> None:
    p.mkdir(mode=0o700)
    os.chown(p, 65534, 65534)


def _file(p: Path) -> None:
    p.write_text("")


@pytest.mark.parametrize(("make", "why"), [
    (_world, "writable by group or others"), (_group, "writable by group or others"),
    (_link, "symbolic link"), (_other_owner, "belongs to uid 65534"),
    (_file, "not a directory"),
], ids=["world-writable", "group-writable", "symlink", "other-owner", "a-file"])
def test_a_directory_not_private_is_refused(tmp_path, make, why):
    if make is _other_owner and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    target = tmp_path / "keep"
    make(target)
    with pytest.raises(KeepDirRefused, match=why):
        private_dir(target)


def test_a_missing_directory_is_made_private(tmp_path):
    made = private_dir(tmp_path / "a" / "keep")
    assert oct(made.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(("env", "where"), [
    ({"XDG_RUNTIME_DIR": "/run/user/7"}, "/run/user/7/greenroom"),
    ({"XDG_CACHE_HOME": "/c"}, "/c/greenroom/keep"),
], ids=["runtime-dir", "cache-dir"])
def test_keep_dir(monkeypatch, env, where):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert str(keep_paths.keep_dir()) == where


# -- the code version names the socket -------------------------------------------------------

def test_other_code_is_another_socket(tmp_path):
    root = tmp_path / "checkout"
    (root / "runbooks" / "core").mkdir(parents=True)
    code = root / "runbooks" / "core" / "session.py"
    code.write_text("x")
    first = code_version("/usr/bin/python3", root)
    assert code_version("/usr/bin/python3", root) == first
    assert code_version("/opt/venv/bin/python", root) != first  # another interpreter
    assert code_version("/usr/bin/python3", tmp_path) != first  # another checkout
    os.utime(code, ns=(1, 1))
    assert code_version("/usr/bin/python3", root) != first  # the code changed
    assert keep_paths.socket_path(tmp_path, "a") != keep_paths.socket_path(tmp_path, "b")


# -- the switch -------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "section", "seconds"), [
    ({}, None, 60), ({}, {"keep": 60}, 60), ({}, {"keep": 0}, 0), ({}, {}, 60),
    ({"GREENROOM_SSH_KEEP": "0"}, {"keep": 60}, 0), ({"GREENROOM_SSH_KEEP": "0"}, None, 0),
    ({"GREENROOM_SSH_KEEP": "30"}, None, 30), ({"GREENROOM_SSH_KEEP": ""}, {"keep": 5}, 5),
], ids=["default-on-60s", "inventory", "inventory-turns-off", "empty-section-default",
        "env-turns-off", "env-turns-default-off", "env-sets", "empty-env-ignored"])
def test_keep_seconds(env, section, seconds):
    inventory = SimpleNamespace(sections={"ssh": section} if section else {})
    assert keep_seconds(inventory, env) == seconds


def test_a_bad_environment_value_is_a_usage_error():
    with pytest.raises(UsageError, match="GREENROOM_SSH_KEEP='soon': expected whole seconds"):
        keep_seconds(SimpleNamespace(sections={}), {"GREENROOM_SSH_KEEP": "soon"})


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "must be between 0 and 86400"), ("yes", "whole number"),
    ("{keep: 1, persist: 2}", "persist"),
], ids=["negative", "not-a-number", "unknown-key"])
def test_a_bad_ssh_section_names_file_line_and_key(value, message):
    from runbooks.core.inventory import InventoryError, parse_inventory

    text = (Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml").read_text()
    body = f"{{keep: {value}}}" if not value.startswith("{") else value
    text += f"ssh: {body}\n"
    line = text.count("\n")
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, "hosts/site.yaml")
    problems = [p for p in raised.value.problems if p.key.startswith("ssh")]
    assert problems and problems[0].line == line and problems[0].file == "hosts/site.yaml"
    assert message in str(problems[0])


# -- who may talk to the keeper ----------------------------------------------------------------

@pytest.mark.parametrize(("uid_offset", "answered"), [(0, True), (1, False)],
                         ids=["same-user-answered", "other-user-closed-unanswered"])
def test_peer_credentials_decide(monkeypatch, uid_offset, answered):
    monkeypatch.setattr(keep_server, "peer_uid", lambda conn: os.getuid() + uid_offset)
    ours, theirs = socket.socketpair()
    keeper = Keeper(60)
    keeper.active = 1
    keep_wire.send(theirs, {"op": "status"})
    keeper.serve_one(ours)
    if answered:
        header, _ = keep_wire.receive(theirs)
        assert header["pid"] == os.getpid()
    else:
        with pytest.raises(keep_wire.WireError):
            keep_wire.receive(theirs)


def test_the_real_peer_uid_is_ours():
    ours, theirs = socket.socketpair()
    assert keep_server.peer_uid(ours) == os.getuid()


# -- the wire, a whole keeper in a thread ---------------------------------------------------------

class FakeSession:
    """What the keeper's session answers, by command line."""

    def __init__(self) -> None:
        self.connection = SimpleNamespace(transport=SimpleNamespace(is_active=lambda: True))
        self.seen: list[tuple[str, bytes | None, float | None]] = []

    def _exec_raw(self, line, data, timeout):
        self.seen.append((line, data, timeout))
        if line == "lost":
            raise HostUnreachable("connection to alpha lost while a command ran (the host "
                                  "closed the channel without an exit status)")
        return CommandResult(3, "out \ufffd\x00", "err", signal="TERM" if line == "sig" else None)


@pytest.fixture
def serving(tmp_path, monkeypatch):
    """A keeper serving in a thread at a socket in tmp_path, its sessions FakeSession."""
    session = FakeSession()
    closed: list[str] = []
    opened: list[bool] = []

    def fake_open(identity, strict):
        opened.append(strict)
        return SimpleNamespace(close_all=lambda: closed.append(identity["name"])), session

    monkeypatch.setattr(keep_server, "_open", fake_open)
    folder = tmp_path / "keep"
    path = folder / "keep-test.sock"
    folder.mkdir(mode=0o700)
    listener, lock = keep_server.listen(path)
    keeper = Keeper(60)
    thread = threading.Thread(target=keeper.serve, args=(listener,), daemon=True)
    thread.start()
    yield SimpleNamespace(path=path, keeper=keeper, session=session, closed=closed,
                          opened=opened, thread=thread)
    keeper.stopping = True
    thread.join(10)
    listener.close()
    lock.close()


def kept_session(path):
    client = keep_client.KeepClient(60, path, start=False)
    session = client.session(HOST, ident())
    assert isinstance(session, keep_client.KeptSession)
    return session


def test_round_trip_of_a_command(serving):
    session = kept_session(serving.path)
    result = session._exec_raw("cat", b"\x00\xffbinary", 5.0)
    assert result == CommandResult(3, "out \ufffd\x00", "err")
    assert serving.session.seen == [("cat", b"\x00\xffbinary", 5.0)]


def test_no_stdin_stays_none_and_a_signal_comes_back(serving):
    result = kept_session(serving.path)._exec_raw("sig", None)
    assert result.signal == "TERM" and serving.session.seen == [("sig", None, None)]


def test_a_missing_exit_status_is_the_hosts_lost_connection(serving):
    with pytest.raises(HostUnreachable, match="alpha lost while a command ran"):
        kept_session(serving.path)._exec_raw("lost", None)


def test_a_dead_connection_is_reopened_once_strictly_before_sending(serving):
    session = kept_session(serving.path)
    assert serving.opened == [False]
    serving.session.connection.transport = SimpleNamespace(is_active=lambda: False)
    session._exec_raw("true", None)
    assert serving.opened == [False, True]  # reopened once, host key checked strictly
    assert serving.closed == ["alpha"]


def test_drop_by_address_closes(serving):
    kept_session(serving.path)
    client = keep_client.KeepClient(0, serving.path, start=False)
    assert client.drop(addresses=["10.9.9.9"]) == 0
    assert client.drop(addresses=["10.0.0.2"]) == 1 and serving.closed == ["alpha"]


def test_the_keeper_going_away_mid_command_is_unreachable(serving, monkeypatch):
    session = kept_session(serving.path)
    monkeypatch.setattr(keep_wire, "receive", _raise_wire)
    with pytest.raises(HostUnreachable, match="keeper went away while a command ran"):
        session._exec_raw("true", None)


def _raise_wire(sock):
    raise keep_wire.WireError("the other side closed the connection")


def test_idle_keeper_exits_and_closes_its_connections(tmp_path, monkeypatch):
    monkeypatch.setattr(keep_server, "ACCEPT_POLL", 0.01)
    monkeypatch.setattr(keep_server, "_open", lambda identity, strict: (
        SimpleNamespace(close_all=lambda: closed.append(1)), FakeSession()))
    closed: list[int] = []
    folder = tmp_path / "keep"
    folder.mkdir(mode=0o700)
    listener, lock = keep_server.listen(folder / "k.sock")
    keeper = Keeper(0.05)
    thread = threading.Thread(target=keeper.serve, args=(listener,), daemon=True)
    thread.start()
    keep_client.KeepClient(0, folder / "k.sock", start=False).request(
        {"op": "open", "identity": ident()})
    thread.join(30)
    assert not thread.is_alive() and closed == [1]
    listener.close()
    lock.close()


def test_a_second_keeper_for_the_same_socket_steps_aside(tmp_path):
    folder = tmp_path / "keep"
    folder.mkdir(mode=0o700)
    first = keep_server.listen(folder / "k.sock")
    assert first is not None
    assert keep_server.listen(folder / "k.sock") is None  # the lock is held: it wins
    first[0].close()
    first[1].close()


# -- starting, falling back, and what the keeper is given ----------------------------------------

def test_keeper_that_cannot_start_means_direct_connections(tmp_path, monkeypatch):
    monkeypatch.setattr(keep_client, "START_WAIT", 0.2)
    monkeypatch.setattr(keep_client, "keeper_command", lambda path, keep: ["true"])
    folder = tmp_path / "keep"
    client = keep_client.KeepClient(60, folder / "keep-x.sock")
    assert client.session(HOST, ident()) is None
    assert client.session(HOST, ident()) is None  # tried once per run, not per host
    assert "did not listen" in str(client._broken)


def test_a_refused_directory_means_direct_connections(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(keep_client.subprocess, "Popen", lambda *a, **k: started.append(a))
    folder = tmp_path / "keep"
    _world(folder)
    assert keep_client.KeepClient(60, folder / "keep-x.sock").session(HOST, ident()) is None
    assert started == []


def test_the_connector_falls_back_to_its_direct_connection(monkeypatch):
    from runbooks.core.session import Connector

    monkeypatch.setattr(keep_client.KeepClient, "session", lambda self, host, ident, opener: None)
    connector = Connector.__new__(Connector)
    connector.keep, connector._keep_client, connector._gateways = 60, None, set()
    connector._lock = threading.Lock()
    connector._key_filename = connector._extra_known_hosts = None
    connector.known_hosts, connector.accept_new, connector.connect_timeout = Path("/k"), False, 5
    assert connector._kept_session(HOST) is None
    assert connector._keep_client is not None  # it asked the keeper first


def test_no_secret_reaches_the_keepers_argv_or_environment(tmp_path, monkeypatch):
    from runbooks.core import secrets

    monkeypatch.setenv(SUDO_PASSWORD_ENV, "Sudo-secret-1")
    monkeypatch.setenv("GREENROOM_BGP_PASSWORD", "Bgp-secret-2")
    monkeypatch.setenv("GREENROOM_REGISTRY_TOKEN", "Token-3")
    monkeypatch.setenv("SOME_CREDENTIAL", "Registered-5")
    secrets.register("Sudo-secret-1")
    secrets.register("Registered-5")
    spawned = []

    def popen(argv, **kwargs):
        spawned.append((argv, kwargs))
        raise OSError("not started in this test")

    monkeypatch.setattr(keep_client.subprocess, "Popen", popen)
    folder = tmp_path / "keep"
    assert keep_client.KeepClient(60, folder / "keep-x.sock").session(HOST, ident()) is None
    ((argv, kwargs),) = spawned
    assert argv[1:] == ["-m", "runbooks.core.keep_server", str(folder / "keep-x.sock"), "60"]
    shown = " ".join(argv) + " ".join(f"{k}={v}" for k, v in kwargs["env"].items())
    for value in ("Sudo-secret-1", "Bgp-secret-2", "Token-3", "Registered-5"):
        assert value not in shown
    assert kwargs["start_new_session"] is True and kwargs["stdin"] == kwargs["stdout"]


def test_the_sudo_password_goes_as_stdin_data_only(serving):
    session = kept_session(serving.path)
    session._sudo, session._password = "password", "Pw-secret-4"
    session.run("id")
    ((line, data, _),) = serving.session.seen
    assert "Pw-secret-4" not in line and data == b"Pw-secret-4\n"


# -- the tasks ----------------------------------------------------------------------------------

def test_ssh_status_and_close_tasks(serving, monkeypatch, capsys):
    from invoke import Context

    from runbooks.ssh import tasks

    monkeypatch.setattr(keep_client, "keep_dir", lambda: serving.path.parent)
    kept_session(serving.path)
    tasks.status(Context())
    out = capsys.readouterr().out
    assert f"keeper pid {os.getpid()}: 1 connection(s)" in out
    assert "alpha" in out and "root@10.0.0.2" in out
    monkeypatch.setattr(tasks, "_alive", lambda pid: False)
    tasks.close(Context())
    assert "stopped 1 keeper(s)" in capsys.readouterr().out
    serving.thread.join(10)
    assert not serving.thread.is_alive() and serving.closed == ["alpha"]


def test_ssh_status_without_a_keeper(tmp_path, monkeypatch, capsys):
    from invoke import Context

    from runbooks.ssh import tasks

    monkeypatch.setattr(keep_client, "keep_dir", lambda: tmp_path)
    tasks.status(Context())
    tasks.close(Context())
    assert capsys.readouterr().out == ("no connections kept (no keeper running)\n"
                                       "no keeper was running\n")


def test_a_request_waiting_when_the_keeper_idles_out_is_still_answered(tmp_path):
    folder = tmp_path / "keep"
    folder.mkdir(mode=0o700)
    listener, lock = keep_server.listen(folder / "k.sock")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(folder / "k.sock"))  # in the backlog, not accepted yet
    keep_wire.send(client, {"op": "status"})
    keeper = Keeper(0)
    keeper.last -= 1  # idle already: the loop accepts nobody
    left = []
    keeper.serve(listener, lambda: left.append(True))
    header, _ = keep_wire.receive(client)
    assert header["pid"] == os.getpid() and left == [True]
    listener.close()
    lock.close()


def test_lab_down_drops_the_lab_hosts_kept_connections(serving, monkeypatch):
    from runbooks.lab import control

    monkeypatch.setattr(keep_client, "keep_dir", lambda: serving.path.parent)
    kept_session(serving.path)
    other = SimpleNamespace(address="10.9.9.9")
    control._drop_kept(SimpleNamespace(hosts={"alpha": HOST, "beta": other}))
    assert serving.closed == ["alpha"]
    assert serving.keeper.status()["connections"] == []


def test_lab_reset_of_one_guest_drops_only_its_kept_connection(serving, monkeypatch):
    from runbooks.lab import control

    monkeypatch.setattr(keep_client, "keep_dir", lambda: serving.path.parent)
    kept_session(serving.path)
    other = SimpleNamespace(address="10.9.9.9")
    control._drop_kept(SimpleNamespace(hosts={"alpha": HOST, "beta": other}), ["beta"])
    assert serving.closed == []  # alpha's connection is not beta's
    control._drop_kept(SimpleNamespace(hosts={"alpha": HOST, "beta": other}), ["alpha"])
    assert serving.closed == ["alpha"]
