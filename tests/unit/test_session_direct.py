"""The direct paramiko path resolves a host exactly as Fabric does: for each SSH config,
the host name, user, port, connect timeout and `connect_kwargs` (identity files included)
that `DirectConnection` hands `SSHClient.connect` are the ones Fabric's `Connection` would;
and a host whose config needs Fabric (ProxyJump, ProxyCommand, a Fabric config file) gets
no direct connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric import Config, Connection

from runbooks.core.session_direct import DirectConnection, SshSettings

LAB = {"pkey": "parsed-key", "look_for_keys": False, "allow_agent": False}

# (id, ~/.ssh/config, /etc/ssh/ssh_config, address, inventory user, inventory port,
#  connect timeout, connect_kwargs)
CASES = [
    ("no config", "", "", "10.0.0.5", "root", 22, 10.0, {}),
    ("hostname user port identity", "Host board\n  HostName 10.0.0.9\n  User pi\n"
     "  Port 2222\n  IdentityFile ~/.ssh/board_key\n", "", "board", None, None, 10.0, {}),
    ("inventory user and port win", "Host board\n  User pi\n  Port 2222\n", "", "board",
     "admin", 2200, 10.0, {}),
    ("user file before system file", "Host *\n  User alice\n",
     "Host *\n  User bob\n  Port 2022\n", "10.0.0.5", None, None, 10.0, {}),
    ("identity files from both, with the lab key", "Host 10.0.0.*\n  IdentityFile ~/a\n",
     "Host *\n  IdentityFile /etc/b\n  GSSAPIAuthentication yes\n", "10.0.0.5", "root", 22,
     10.0, LAB),
    ("connect timeout from the config when none is given", "Host *\n  ConnectTimeout 7\n",
     "", "10.0.0.5", "root", 22, None, {}),
    ("explicit connect timeout wins", "Host *\n  ConnectTimeout 7\n", "", "10.0.0.5",
     "root", 22, 10.0, {}),
    ("key file names given as a string", "", "", "10.0.0.5", "root", 22, 10.0,
     {"key_filename": "/lab/key"}),
]


def _fabric_view(conn: Connection) -> tuple:
    return (conn.host, conn.user, conn.port, conn.connect_timeout,
            {k: v for k, v in conn.connect_kwargs.items()})


def _direct_view(conn: DirectConnection) -> tuple:
    return (conn.host, conn.user, conn.port, conn.connect_timeout, conn.connect_kwargs)


@pytest.mark.parametrize(
    ("user_conf", "system_conf", "address", "user", "port", "timeout", "kwargs"),
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_same_connection_arguments_as_fabric(tmp_path: Path, monkeypatch, user_conf,
                                                 system_conf, address, user, port, timeout,
                                                 kwargs):
    monkeypatch.setenv("HOME", str(tmp_path))
    user_path, system_path = tmp_path / "user_config", tmp_path / "system_config"
    user_path.write_text(user_conf)
    system_path.write_text(system_conf)
    settings = SshSettings(str(user_path), str(system_path), fabric_files=())
    ssh = settings.direct(address)
    assert ssh is not None
    direct = DirectConnection.build(address, user, port, timeout, dict(kwargs), ssh)
    fabric = Connection(host=address, user=user, port=port, connect_timeout=timeout,
                        connect_kwargs=dict(kwargs),
                        config=Config(user_ssh_path=str(user_path),
                                      system_ssh_path=str(system_path)))
    assert _direct_view(direct) == _fabric_view(fabric)


@pytest.mark.parametrize(("config", "address", "fabric_file"), [
    ("Host board\n  ProxyJump gw\n", "board", False),
    ("Host 10.0.0.*\n  ProxyCommand ssh -W %h:%p gw\n", "10.0.0.5", False),
    ("", "10.0.0.5", True),
], ids=["proxyjump", "proxycommand", "a fabric config file"])
def test_hosts_that_need_fabric_get_no_direct_connection(tmp_path: Path, config, address,
                                                         fabric_file):
    user_path = tmp_path / "config"
    user_path.write_text(config)
    marker = tmp_path / ".fabric.yaml"
    if fabric_file:
        marker.write_text("user: someone\n")
    settings = SshSettings(str(user_path), str(tmp_path / "none"), fabric_files=(str(marker),))
    assert settings.direct(address) is None
    assert settings.direct("elsewhere") is None if fabric_file else \
        settings.direct("elsewhere") is not None


def test_the_ssh_config_is_read_once(tmp_path: Path):
    user_path = tmp_path / "config"
    user_path.write_text("Host a\n  Port 2201\n")
    settings = SshSettings(str(user_path), str(tmp_path / "none"), fabric_files=())
    user_path.write_text("Host a\n  Port 2202\n")
    assert settings.direct("a") == {"hostname": "a", "port": "2201"}
