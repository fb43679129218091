"""k3s.fetch against the lab's release site on loopback: pinned, verified, cached, locked;
a tampered file and a release that changed since it was pinned are both refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.k3s.release import Lock, ReleaseError, cache_dir, cached, fetch
from runbooks.lab import release
from tests.engine.test_k3s_double import free_port

VERSION = "v1.34.1+k3s1"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def serve(log: Path, tamper: tuple[str, ...] = ()) -> Iterator[str]:
    server = release.make_server(f"127.0.0.1:{free_port()}", str(log), tamper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{server.server_address[0]}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(cache: Path) -> Iterator[str]:
    yield from serve(cache / "release.log")


@pytest.fixture
def tampered(cache: Path) -> Iterator[str]:
    yield from serve(cache / "tampered.log", tamper=("k3s-arm64",))


def test_fetch_verifies_caches_and_pins(cache: Path, site: str) -> None:
    lock = Lock(cache / "lab.k3s.lock", {})
    report = fetch(VERSION, ("arm", "arm64"), "tar.gz", site, lock, log=lambda _m: None)
    assert sorted(report.fetched) == ["k3s-airgap-images-arm.tar.gz",
                                      "k3s-airgap-images-arm64.tar.gz", "k3s-arm64",
                                      "k3s-armhf"]
    assert set(lock.versions[VERSION]) == set(report.fetched)
    assert cached(VERSION, "k3s-arm64", lock).parent == cache_dir(VERSION)
    lock.write()
    again = Lock.read(lock.path)
    requests = (cache / "release.log").read_text().count("\n")
    second = fetch(VERSION, ("arm", "arm64"), "tar.gz", site, again, log=lambda _m: None)
    assert second.fetched == [] and len(second.cached) == 4
    assert (cache / "release.log").read_text().count("\n") == requests  # nothing downloaded


def test_check_mode_lists_what_is_missing_and_downloads_nothing(cache: Path, site: str) -> None:
    lock = Lock(cache / "lab.k3s.lock", {})
    report = fetch(VERSION, ("arm64",), "tar.gz", site, lock, check=True)
    assert report.missing == ["k3s-arm64", "k3s-airgap-images-arm64.tar.gz"]
    assert not (cache / "release.log").exists() or not (cache / "release.log").read_text()


def test_a_tampered_binary_is_refused_and_nothing_kept(cache: Path, tampered: str) -> None:
    lock = Lock(cache / "lab.k3s.lock", {})
    with pytest.raises(ReleaseError, match="k3s-arm64: downloaded sha256 .* does not match"):
        fetch(VERSION, ("arm64",), "tar.gz", tampered, lock, log=lambda _m: None)
    assert not (cache_dir(VERSION) / "k3s-arm64").exists()
    assert lock.digest(VERSION, "k3s-arm64") is None


def test_a_release_that_changed_since_pinning_is_refused(cache: Path, site: str) -> None:
    lock = Lock(cache / "lab.k3s.lock", {VERSION: {"k3s-arm64": "0" * 64}})
    with pytest.raises(ReleaseError, match="pinned 0000"):
        fetch(VERSION, ("arm64",), "tar.gz", site, lock, log=lambda _m: None)


def test_a_cached_file_that_differs_from_the_lock_is_not_used(cache: Path, site: str) -> None:
    lock = Lock(cache / "lab.k3s.lock", {})
    fetch(VERSION, ("arm64",), "tar.gz", site, lock, log=lambda _m: None)
    (cache_dir(VERSION) / "k3s-arm64").write_bytes(b"not k3s")
    with pytest.raises(ReleaseError, match="does not match the sha256 pinned"):
        cached(VERSION, "k3s-arm64", lock)


def lab_inventory(tmp_path: Path, source: str) -> Path:
    text = (Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml").read_text()
    path = tmp_path / "lab.yaml"
    path.write_text(text.replace("source: http://127.0.0.1:18231\n", f"source: {source}\n", 1))
    return path


@pytest.mark.parametrize("source, forgotten", [
    ("http://127.0.0.1:18231", ["k3s-arm64"]),    # the lab's release site: its double
    ("http://10.9.9.9/k3s", []),                  # anyone else's release: pins are kept
], ids=["lab-site-forgets", "other-site-keeps"])
def test_lab_up_forgets_pins_of_a_changed_double(cache: Path, site: str, source: str,
                                                 forgotten: list[str]) -> None:
    from runbooks.core.inventory import load_inventory

    path = lab_inventory(cache, source)
    version = load_inventory(path).sections["cluster"].version
    lock = Lock(cache / "lab.k3s.lock", {})
    fetch(version, ("arm64",), "tar.zst", site, lock, log=lambda _m: None)
    lock.versions[version]["k3s-arm64"] = "0" * 64   # pinned from an older double
    lock.write()
    said: list[str] = []
    dropped = release.forget_stale_pins(load_inventory(path), said.append)
    assert dropped == [f"{version}/{n}" for n in forgotten]
    left = set(Lock.read(cache / "lab.k3s.lock").versions[version])
    assert left == {"k3s-arm64", "k3s-airgap-images-arm64.tar.zst"} - set(forgotten)
    assert bool(said) == bool(forgotten)
    if forgotten:  # and the next fetch pins the double it serves now
        again = Lock.read(cache / "lab.k3s.lock")
        assert fetch(version, ("arm64",), "tar.zst", site, again,
                     log=lambda _m: None).fetched == ["k3s-arm64"]
