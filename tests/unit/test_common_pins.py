"""runbooks.common.pins: the lock files of `inv k3s.fetch` and `inv microk8s.fetch`, the
checksum list, and a download kept only when its sha256 is the one listed (file:// URLs: no
network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runbooks.common import pins


class Refused(Exception):
    pass


@pytest.mark.parametrize(("text", "expected"), [
    (None, {}),
    ('{"versions": {"v1": {"k3s": "ab"}}}', {"v1": {"k3s": "ab"}}),
    ("{", "not valid JSON"),
    ('{"channels": {}}', 'expected {"versions": {...}}; restore it from git'),
    ('["versions"]', 'expected {"versions": {...}}'),
    ('{"versions": []}', 'expected {"versions": {...}}'),
], ids=["no-lock-yet", "pinned", "broken-json", "other-kind-of-lock", "a-list", "wrong-shape"])
def test_read_lock(tmp_path: Path, text: str | None, expected: dict | str) -> None:
    path = tmp_path / "lab.k3s.lock"
    if text is not None:
        path.write_text(text)
    if isinstance(expected, dict):
        assert pins.read_lock(path, "versions", Refused) == expected
        return
    with pytest.raises(Refused) as refused:
        pins.read_lock(path, "versions", Refused)
    assert str(path) in str(refused.value) and expected in str(refused.value)


def test_write_lock_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.microk8s.lock"
    section = {"1.32/stable": {"revision": "7", "files": {"a": "b"}}}
    pins.write_lock(path, "pinned; commit this file", "channels", section)
    assert pins.read_lock(path, "channels", Refused) == section
    assert '"comment": "pinned; commit this file"' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["lab.microk8s.lock"]


def test_parse_sums() -> None:
    text = f"{'A' * 64}  k3s\n{'b' * 64} *k3s-arm64\nnot a line\n{'c' * 10}  short\n"
    assert pins.parse_sums(text) == {"k3s": "a" * 64, "k3s-arm64": "b" * 64}


@pytest.mark.parametrize("right", [True, False], ids=["listed-sha256-kept",
                                                      "other-sha256-refused-nothing-kept"])
def test_download_verified(tmp_path: Path, right: bool) -> None:
    served = tmp_path / "site" / "k3s-arm64"
    served.parent.mkdir()
    served.write_bytes(b"release bytes")
    listed = hashlib.sha256(b"release bytes" if right else b"other").hexdigest()
    target = tmp_path / "cache" / "k3s-arm64"
    if right:
        got = pins.download_verified(served.as_uri(), target, listed, Refused, "k3s-arm64",
                                     "sha256sum-arm64.txt")
        assert got == listed and target.read_bytes() == b"release bytes"
    else:
        with pytest.raises(Refused, match="k3s-arm64: downloaded sha256 .* does not match "
                                          f"{listed} from sha256sum-arm64.txt"):
            pins.download_verified(served.as_uri(), target, listed, Refused, "k3s-arm64",
                                   "sha256sum-arm64.txt")
        assert list(target.parent.iterdir()) == []


def test_a_failed_download_is_the_callers_error_with_its_hint(tmp_path: Path) -> None:
    with pytest.raises(Refused, match=r"cannot download .* \(a mirror\)$"):
        pins.download((tmp_path / "missing").as_uri(), tmp_path / "x", Refused, " (a mirror)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
