"""inv microk8s.fetch: pinning, the cache, refusals (mirror on loopback, `snap download`
through a stand-in `snap` on PATH)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbooks.lab.doubles.microk8s import snapfiles
from runbooks.microk8s import fetch as f

CHANNEL = "1.32/stable"
NEXT = "1.33/stable"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def mirror() -> Iterator[dict[str, bytes]]:
    """A loopback mirror serving {"<track>/<risk>/<name>": bytes} (mutable by the test)."""
    files: dict[str, bytes] = {f"{CHANNEL}/{n}": d
                               for n, d in (snapfiles.files(CHANNEL) or {}).items()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = files.get(self.path.removeprefix("/microk8s/"))
            self.send_response(200 if data is not None else 404)
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    files["url"] = f"http://127.0.0.1:{server.server_address[1]}/microk8s".encode()
    yield files
    server.shutdown()


def url(mirror: dict[str, bytes]) -> str:
    return mirror["url"].decode()


def test_first_fetch_pins_then_the_cache_answers(tmp_path: Path, mirror) -> None:  # noqa: ANN001
    lock = f.Lock.read(tmp_path / "site.microk8s.lock")
    got = f.fetch(CHANNEL, url(mirror), lock)
    rev = snapfiles.revision(CHANNEL)
    assert got.how == "pinned" and got.revision == rev
    pinned = json.loads((tmp_path / "site.microk8s.lock").read_text())["channels"][CHANNEL]
    snap = f"microk8s_{rev}.snap"
    assert pinned["revision"] == rev
    assert pinned["files"][snap] == hashlib.sha256(snapfiles.snap_bytes(CHANNEL)).hexdigest()
    assert got.files[snap].read_bytes() == snapfiles.snap_bytes(CHANNEL)
    again = f.fetch(CHANNEL, url(mirror), f.Lock.read(lock.path))
    assert again.how == "cached"
    got.files[snap].write_bytes(b"rotten")  # a damaged cache is fetched again, same pin
    assert f.fetch(CHANNEL, url(mirror), f.Lock.read(lock.path)).how == "downloaded"


def _break(mirror: dict[str, bytes], case: str) -> None:
    rev = snapfiles.revision(CHANNEL)
    snap, sums = f"{CHANNEL}/microk8s_{rev}.snap", f"{CHANNEL}/SHA256SUMS"
    assert snapfiles.revision(NEXT) != rev
    if case == "sums":
        mirror[snap] += b"x"
    elif case == "assertion":  # SHA256SUMS consistent, but the snap is not the asserted one
        mirror[snap] += b"x"
        mirror[sums] = "".join(
            f"{hashlib.sha256(mirror[k]).hexdigest()}  {k.rsplit('/', 1)[1]}\n"
            for k in (snap, f"{CHANNEL}/microk8s_{rev}.assert")).encode()
    elif case == "moved":  # the channel now offers another revision (that of NEXT's files)
        for key in [k for k in mirror if k.startswith(CHANNEL)]:
            del mirror[key]
        for name, data in (snapfiles.files(NEXT) or {}).items():
            mirror[f"{CHANNEL}/{name}"] = data


@pytest.mark.parametrize(("case", "pin_first", "message"), [
    ("sums", False, "from the mirror's SHA256SUMS; refusing it"),
    ("assertion", False, "does not match the SHA3-384 its assertion states"),
    ("moved", True, "run `inv microk8s.fetch --update` to pin it"),
], ids=["tampered-download", "snap-not-the-asserted-one", "channel-moved-on"])
def test_refusals_cache_nothing(tmp_path: Path, mirror, case: str, pin_first: bool,  # noqa: ANN001
                                message: str, cache: Path) -> None:
    lock = f.Lock.read(tmp_path / "site.microk8s.lock")
    if pin_first:
        got = f.fetch(CHANNEL, url(mirror), lock)
        for path in got.files.values():
            path.unlink()
    before = lock.path.read_text() if lock.path.exists() else None
    _break(mirror, case)
    with pytest.raises(f.FetchError, match=message.replace("`", ".").replace("-", ".")):
        f.fetch(CHANNEL, url(mirror), f.Lock.read(lock.path))
    assert not [p for p in cache.rglob("*") if p.is_file()]
    assert (lock.path.read_text() if lock.path.exists() else None) == before


def test_update_repins_a_channel_that_moved_on(tmp_path: Path, mirror) -> None:  # noqa: ANN001
    lock = f.Lock.read(tmp_path / "site.microk8s.lock")
    assert f.fetch(CHANNEL, url(mirror), lock).revision == snapfiles.revision(CHANNEL)
    _break(mirror, "moved")
    got = f.fetch(CHANNEL, url(mirror), f.Lock.read(lock.path), update=True)
    assert got.how == "pinned" and got.revision == snapfiles.revision(NEXT)
    assert f.Lock.read(lock.path).channels[CHANNEL].revision == got.revision


def test_without_source_it_runs_snap_download(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `snap` on PATH: the argv it gets, and the files it leaves in its working
    directory, are used; a channel that moved on is refused, --update re-pins it."""
    calls = tmp_path / "calls"
    (tmp_path / "bin").mkdir()
    for channel in (CHANNEL, NEXT):
        (tmp_path / channel).mkdir(parents=True)
        for name, data in (snapfiles.files(channel) or {}).items():
            (tmp_path / channel / name).write_bytes(data)
    offered = tmp_path / "offered"
    offered.write_text(CHANNEL)
    stand_in = tmp_path / "bin" / "snap"
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n"
                        f"cp {tmp_path}/$(cat {offered})/microk8s_* .\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    lock = f.Lock.read(tmp_path / "site.microk8s.lock")
    assert f.fetch(CHANNEL, None, lock).how == "pinned"
    for path in f.cached(CHANNEL, lock).files.values():  # type: ignore[union-attr]
        path.unlink()
    assert f.fetch(CHANNEL, None, f.Lock.read(lock.path)).how == "downloaded"
    assert calls.read_text().splitlines() == [f"download microk8s --channel={CHANNEL}"] * 2
    offered.write_text(NEXT)  # the store's channel moved on
    for path in f.cache_dir(snapfiles.revision(CHANNEL)).iterdir():
        path.unlink()
    with pytest.raises(f.FetchError, match="now offers revision .* microk8s.fetch --update"):
        f.fetch(CHANNEL, None, f.Lock.read(lock.path))
    got = f.fetch(CHANNEL, None, f.Lock.read(lock.path), update=True)
    assert (got.how, got.revision) == ("pinned", snapfiles.revision(NEXT))


def test_without_snap_it_says_where_to_run_it(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(f.FetchError, match="no `snap` command on this machine"):
        f.fetch(CHANNEL, None, f.Lock.read(tmp_path / "x.microk8s.lock"))


def test_release_site_double_serves_the_same_files() -> None:
    from runbooks.lab.release import microk8s_asset

    rev = snapfiles.revision(CHANNEL)
    assert microk8s_asset(["1.32", "stable", f"microk8s_{rev}.snap"]) == \
        snapfiles.snap_bytes(CHANNEL)
    assert microk8s_asset(["1.32", "stable", "nope"]) is None
    facts = f.assertion_facts(snapfiles.assertion(CHANNEL).decode())
    assert facts["snap-revision"] == rev


def test_offline_install_reads_the_pins(tmp_path: Path, mirror) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from runbooks.common.microk8s_cluster import Microk8sCluster
    from runbooks.core.steps import StepFailed
    from runbooks.microk8s.offline import pinned_files

    inventory = SimpleNamespace(path=str(tmp_path / "site.yaml"))
    cluster = Microk8sCluster(CHANNEL, ("m0",), {"m0": "10.0.0.3"}, offline=True,
                              source=url(mirror))
    with pytest.raises(StepFailed, match="site.microk8s.lock pins no snap for 1.32/stable"):
        pinned_files(inventory, cluster)  # type: ignore[arg-type]
    got = f.fetch(CHANNEL, url(mirror), f.Lock.read(tmp_path / "site.microk8s.lock"))
    for path in got.files.values():
        path.unlink()
    with pytest.raises(StepFailed, match="check mode downloads nothing"):
        pinned_files(inventory, cluster, check=True)  # type: ignore[arg-type]
    again = pinned_files(inventory, cluster)  # type: ignore[arg-type]
    assert again.how == "downloaded" and again.digests == got.digests
