"""The lab apt proxy's package cache, against a fake mirror on loopback.

The mirror counts the requests it gets, so each test can say what went upstream.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbooks.lab.aptcache import DebCache, cache_key
from runbooks.lab.aptproxy import make_server

DEB = "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"


@pytest.mark.parametrize(("path", "wanted"), [
    pytest.param(DEB, "mirror/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", id="pool-deb"),
    pytest.param("/pool/main/b/bird2/bird2_2.0.12-7_amd64.deb",
                 "mirror/pool/main/b/bird2/bird2_2.0.12-7_amd64.deb", id="pool-at-root"),
    pytest.param("/debian/pool/main/x/xen/xen-utils-4.17_4.17.3%2b10-g091466ba55-1~deb12u1_amd64"
                 ".deb", "mirror/debian/pool/main/x/xen/xen-utils-4.17_4.17.3%2b10-g091466ba55-"
                 "1~deb12u1_amd64.deb", id="quoted-plus-and-tilde"),
    pytest.param("/debian/pool/main/d/debian-installer/di_1_amd64.udeb",
                 "mirror/debian/pool/main/d/debian-installer/di_1_amd64.udeb", id="udeb"),
    pytest.param("/debian/dists/bookworm/InRelease", None, id="index-inrelease"),
    pytest.param("/debian/dists/bookworm/main/binary-amd64/Packages.xz", None, id="index-packages"),
    pytest.param("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab12", None,
                 id="index-by-hash"),
    pytest.param("/debian/pool/main/h/hello/hello_2.10-3.dsc", None, id="not-a-package"),
    pytest.param("/debian/pool/../../etc/x.deb", None, id="dot-dot"),
    pytest.param("/debian/pool/main/h/./x.deb", None, id="dot"),
    pytest.param("/debian/pool/main/h//x.deb", None, id="empty-segment"),
    pytest.param(DEB + "?x=1", None, id="query"),
    pytest.param("/debian/dists/pool.deb", None, id="pool-not-a-folder"),
    pytest.param("debian/pool/main/h/x.deb", None, id="relative"),
])
def test_cache_key_keeps_only_pool_packages(path: str, wanted: str | None) -> None:
    assert cache_key("mirror", path) == wanted


def test_cache_key_refuses_an_odd_host() -> None:
    assert cache_key("../x", DEB) is None


@dataclass
class Mirror:
    """A fake mirror: fixed bodies per path, every request recorded."""

    files: dict[str, bytes]
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    short: set[str] = field(default_factory=set)   # paths whose body is cut short
    port: int = 0

    def count(self, path: str) -> int:
        return sum(1 for _method, p, _h in self.requests if p == path)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    state = Mirror({DEB: os.urandom(300_000), "/debian/dists/bookworm/InRelease": b"index\n",
                    "/debian/pool/main/s/short/short_1_amd64.deb": b"x" * 1000})
    state.short.add("/debian/pool/main/s/short/short_1_amd64.deb")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append((self.command, self.path, dict(self.headers.items())))
            body = state.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                if self.path in state.short:
                    self.wfile.write(body[:10])
                    self.close_connection = True
                    return
                self.wfile.write(body)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Proxy:
    port: int
    cache: DebCache
    mirror: Mirror

    def get(self, path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, f"http://127.0.0.1:{self.mirror.port}{path}",
                         headers=headers or {})
            resp = conn.getresponse()
            try:
                body = resp.read()
            except http.client.IncompleteRead as exc:
                body = exc.partial
            return resp.status, dict(resp.getheaders()), body
        finally:
            conn.close()


@pytest.fixture
def proxy(tmp_path: Path, mirror: Mirror) -> Iterator[Proxy]:
    cache = DebCache(tmp_path / "apt", max_bytes=10 * 1024**2)
    server = make_server("127.0.0.1:0", ["127.0.0.1"], cache)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield Proxy(server.server_address[1], cache, mirror)
    server.shutdown()
    server.server_close()


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".part-")]


def test_second_fetch_of_a_package_is_served_from_the_cache(proxy: Proxy, mirror: Mirror):
    first = proxy.get(DEB)
    second = proxy.get(DEB)
    assert first[0] == second[0] == 200
    assert first[2] == second[2] == mirror.files[DEB]
    assert mirror.count(DEB) == 1
    assert second[1].get("X-Greenroom-Cache") == "hit"
    assert proxy.cache.path(f"127.0.0.1{DEB}").read_bytes() == mirror.files[DEB]


def test_head_of_a_cached_package_answers_its_length_without_a_body(proxy: Proxy,
                                                                    mirror: Mirror):
    proxy.get(DEB)
    status, headers, body = proxy.get(DEB, method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(mirror.files[DEB])), b"")
    assert mirror.count(DEB) == 1


def test_index_files_always_go_upstream(proxy: Proxy, mirror: Mirror):
    path = "/debian/dists/bookworm/InRelease"
    assert proxy.get(path)[2] == proxy.get(path)[2] == b"index\n"
    assert mirror.count(path) == 2
    assert not any(p.is_file() for p in proxy.cache.root.rglob("InRelease"))


def test_a_range_request_on_a_miss_fetches_and_caches_the_whole_file(proxy: Proxy,
                                                                     mirror: Mirror):
    status, _headers, body = proxy.get(DEB, headers={"Range": "bytes=100-",
                                                     "If-Range": "x"})
    assert (status, body) == (200, mirror.files[DEB])
    upstream_headers = {k.lower() for k in mirror.requests[0][2]}
    assert not upstream_headers & {"range", "if-range"}
    assert proxy.get(DEB)[1].get("X-Greenroom-Cache") == "hit"


def test_a_short_upstream_body_is_never_cached(proxy: Proxy, mirror: Mirror):
    path = "/debian/pool/main/s/short/short_1_amd64.deb"
    _status, _headers, body = proxy.get(path)
    assert len(body) < 1000
    assert not proxy.cache.path(f"127.0.0.1{path}").exists()
    assert _temporaries(proxy.cache.root) == []
    proxy.get(path)
    assert mirror.count(path) == 2


def test_a_missing_package_is_not_cached(proxy: Proxy, mirror: Mirror):
    path = "/debian/pool/main/n/nope/nope_1_amd64.deb"
    assert proxy.get(path)[0] == proxy.get(path)[0] == 404
    assert mirror.count(path) == 2


def test_concurrent_first_fetches_all_get_the_whole_file(proxy: Proxy, mirror: Mirror):
    results: list[bytes] = []

    def fetch() -> None:
        results.append(proxy.get(DEB)[2])

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [mirror.files[DEB]] * 8
    assert proxy.cache.path(f"127.0.0.1{DEB}").read_bytes() == mirror.files[DEB]
    assert _temporaries(proxy.cache.root) == []
    before = mirror.count(DEB)
    assert proxy.get(DEB)[2] == mirror.files[DEB]
    assert mirror.count(DEB) == before


def test_the_least_recently_used_entries_go_when_the_cache_is_full(tmp_path: Path):
    cache = DebCache(tmp_path, max_bytes=300)
    now = time.time()
    for age, name in enumerate(["c", "b", "a"]):   # c is the newest, a the oldest
        with cache.writer(f"m/pool/{name}.deb", 100) as out:
            out.write(b"x" * 100)
        os.utime(cache.path(f"m/pool/{name}.deb"), (now - 100 * age, now - 100 * age))
    hit = cache.open("m/pool/a.deb")   # a hit makes a the most recently used
    assert hit is not None
    hit[0].close()
    with cache.writer("m/pool/d.deb", 100) as out:   # 400 bytes > 300: one has to go
        out.write(b"x" * 100)
    assert sorted(p.name for p in tmp_path.rglob("*.deb")) == ["a.deb", "c.deb", "d.deb"]
    cache.max_bytes = 150
    assert [p.name for p in cache.evict()] == ["c.deb", "a.deb"]


def test_stale_temporaries_of_a_killed_proxy_are_removed(tmp_path: Path):
    cache = DebCache(tmp_path)
    stale = tmp_path / "m" / "pool" / ".part-1-2-x.deb"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = stale.with_name(".part-3-4-y.deb")
    fresh.write_bytes(b"in progress")
    cache.evict()
    assert (stale.exists(), fresh.exists()) == (False, True)
