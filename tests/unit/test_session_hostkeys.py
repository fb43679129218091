"""The run's indexed known_hosts answers every lookup exactly as paramiko's own HostKeys."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import paramiko
import pytest

from runbooks.core import session_hostkeys
from runbooks.core.session_hostkeys import indexed_host_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, paramiko.PKey]:
    """Three real host keys (two ed25519, one ECDSA), generated once."""
    import subprocess

    base = tmp_path_factory.mktemp("hostkeys")
    found = {}
    for name, kind in (("a", "ed25519"), ("b", "ed25519"), ("c", "ecdsa")):
        path = base / name
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
        found[name] = paramiko.PKey.from_path(str(path))
    return found


def _line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}\n"


def _files(tmp_path: Path, keys: dict[str, paramiko.PKey]) -> list[str]:
    hashed = paramiko.HostKeys.hash_host
    user = tmp_path / "known_hosts"
    user.write_text(
        _line("plain.example", keys["a"])
        + _line(hashed("hashed.example"), keys["b"])
        + _line(hashed("[10.0.0.5]:2222"), keys["a"])
        + _line("multi.example,10.0.0.7", keys["b"])
        + _line("twotypes.example", keys["a"])
        + _line("twotypes.example", keys["c"])
        + "# a comment line\n\n"
        + _line(hashed("both.example"), keys["a"])
    )
    lab = tmp_path / "lab_known_hosts"
    lab.write_text(
        _line("10.233.0.11", keys["a"])
        + _line("[10.233.0.12]:22", keys["b"])
        + _line("both.example", keys["c"])  # the same host in the second file, another type
        + _line("plain.example", keys["b"])  # a second key for a host of the first file
    )
    return [str(user), str(lab)]


NAMES = [
    "plain.example", "hashed.example", "[10.0.0.5]:2222", "10.0.0.5", "multi.example",
    "10.0.0.7", "twotypes.example", "both.example", "10.233.0.11", "[10.233.0.12]:22",
    "10.233.0.12", "unknown.example", "", "|1|not-a-real-hash",
]


@pytest.mark.parametrize("name", NAMES)
def test_lookup_matches_paramiko(name: str, tmp_path: Path,
                                 keys: dict[str, paramiko.PKey]) -> None:
    paths = _files(tmp_path, keys)
    theirs = paramiko.HostKeys()
    for path in paths:
        theirs.load(path)
    ours = indexed_host_keys(paths)
    for _ in range(2):  # the second answer comes from the remembered one
        expected = theirs.lookup(name)
        got = ours.lookup(name)
        if expected is None:
            assert got is None
        else:
            assert got is not None
            assert list(got.keys()) == list(expected.keys())
            assert [got[t] for t in got.keys()] == [expected[t] for t in expected.keys()]
        for key in keys.values():
            assert ours.check(name, key) == theirs.check(name, key)


def test_hashed_entries_are_matched_once_per_name(
        tmp_path: Path, keys: dict[str, paramiko.PKey],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours = indexed_host_keys(_files(tmp_path, keys))
    assert ours.lookup("another.example") is None  # the index is built (salts decoded)
    hmacs: list[bytes] = []
    original = hmac.new

    def counting(key: bytes, msg: bytes, digestmod: Any) -> hmac.HMAC:
        hmacs.append(msg)
        return original(key, msg, digestmod)

    monkeypatch.setattr(session_hostkeys.hmac, "new", counting)
    for _ in range(5):  # about what one connection asks
        assert ours.lookup("hashed.example") is not None
        assert ours.check("hashed.example", keys["b"])
    assert hmacs == [b"hashed.example"] * 3  # the file's three hashed entries, each once


def test_keys_added_later_are_found(tmp_path: Path, keys: dict[str, paramiko.PKey]) -> None:
    ours = indexed_host_keys(_files(tmp_path, keys))
    assert ours.lookup("new.example") is None
    ours.add("new.example", keys["a"].get_name(), keys["a"])
    found = ours.lookup("new.example")
    assert found is not None and found[keys["a"].get_name()] == keys["a"]
    ours.clear()
    assert ours.lookup("plain.example") is None
