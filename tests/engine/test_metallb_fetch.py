"""`metallb.fetch` against a loopback HTTP server: pin on first fetch, cache, refuse a change."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.metallb import fetch

MANIFEST = (Path(__file__).resolve().parents[2] / "runbooks" / "lab" / "doubles" / "metallb"
            / "metallb-native.yaml").read_bytes()


class Site:
    body = MANIFEST
    hits: list[str] = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        Site.hits.append(self.path)
        if self.path != "/v0.14.9/config/manifests/metallb-native.yaml":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(Site.body)))
        self.end_headers()
        self.wfile.write(Site.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Site.body, Site.hits = MANIFEST, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_first_fetch_pins_then_cache_answers(source: str, tmp_path: Path) -> None:
    lock = tmp_path / "lab.metallb.lock"
    first = fetch.fetch("v0.14.9", "native", source, lock)
    assert first.how == "pinned" and first.path.read_bytes() == MANIFEST
    assert fetch.read_lock(lock) == {"v0.14.9": {"metallb-native.yaml": first.sha256}}
    second = fetch.fetch("v0.14.9", "native", source, lock)
    assert second.how == "cached" and len(Site.hits) == 1


def test_a_changed_manifest_is_refused_and_nothing_written(source: str,
                                                           tmp_path: Path) -> None:
    lock = tmp_path / "lab.metallb.lock"
    first = fetch.fetch("v0.14.9", "native", source, lock)
    first.path.unlink()
    Site.body = MANIFEST + b"\n# tampered\n"
    with pytest.raises(fetch.FetchError, match="pins"):
        fetch.fetch("v0.14.9", "native", source, lock)
    assert not first.path.exists()
    assert fetch.read_lock(lock)["v0.14.9"]["metallb-native.yaml"] == first.sha256


def test_unknown_version_says_what_to_check(source: str, tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchError, match="metallb.source"):
        fetch.fetch("v9.9.9", "native", source, tmp_path / "x.lock")


def test_lock_path_sits_beside_the_inventory() -> None:
    assert fetch.lock_path(Path("hosts/lab.yaml")) == Path("hosts/lab.metallb.lock")


def test_the_labs_release_site_serves_the_manifest_double(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    from runbooks.lab import release

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = release.make_server("127.0.0.1:0", str(tmp_path / "release.log"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = f"http://127.0.0.1:{server.server_address[1]}/metallb"
        got = fetch.fetch("v0.14.10", "native", source, tmp_path / "lab.metallb.lock")
        text = got.path.read_text()
        assert "quay.io/metallb/controller:v0.14.10" in text and "v0.14.9" not in text
        with pytest.raises(fetch.FetchError, match="Not Found"):
            fetch.fetch("v0.12.1", "native", source, tmp_path / "lab.metallb.lock")
    finally:
        server.shutdown()
        server.server_close()
    assert "GET /metallb/v0.14.10/config/manifests/metallb-native.yaml 200" in (
        tmp_path / "release.log").read_text()
