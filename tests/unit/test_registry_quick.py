"""The no-op check's HEAD client against a loopback server that answers in the ways a
registry (or something else on its port) may: digest, absent, auth required, a kept-alive
connection the server closed, `Connection: close`, garbage."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from runbooks.registry.quick import head_digests, parse_head, split_hostport

DIGEST = "sha256:" + "a" * 64


class Handler(socketserver.BaseRequestHandler):
    """Answers HEAD /v2/<repo>/manifests/<tag> by the repository's name; `drop` answers one
    request per connection and then closes it without saying so."""

    def handle(self) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            repo = path.split("/")[2]
            self.server.seen.append(path)  # type: ignore[attr-defined]
            answers = {
                "ok": f"HTTP/1.1 200 OK\r\nDocker-Content-Digest: {DIGEST}\r\n"
                      "Content-Length: 1234\r\n\r\n",
                "gone": "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                "auth": "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
                "nodigest": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                "close": f"HTTP/1.1 200 OK\r\nDocker-Content-Digest: {DIGEST}\r\n"
                         "Connection: close\r\n\r\n",
                "garbage": "SSH-2.0-OpenSSH_9.2\r\n\r\n",
            }
            self.request.sendall(answers.get(repo, answers["gone"]).encode())
            if repo in ("close", "garbage") or self.server.drop:  # type: ignore[attr-defined]
                return


@pytest.fixture
def server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.seen, srv.drop = [], False  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def host_of(srv) -> str:
    return f"127.0.0.1:{srv.server_address[1]}"


@pytest.mark.parametrize("jobs", [1, 4], ids=["one-connection", "four-threads"])
def test_answers_mapped(server, jobs):
    items = [("ok", "1"), ("gone", "1"), ("auth", "1"), ("nodigest", "1"), ("close", "1"),
             ("ok", "2"), ("garbage", "1"), ("ok", "3")]
    got = head_digests(host_of(server), items, jobs=jobs)
    assert got == [DIGEST, "", None, None, DIGEST, DIGEST, None, DIGEST]
    assert len(server.seen) == len(items)  # one request each (garbage: no retry on a fresh one)


def test_a_kept_alive_connection_closed_by_the_server_is_reopened(server):
    server.drop = True  # every answer ends its connection silently
    got = head_digests(host_of(server), [("ok", str(i)) for i in range(5)], jobs=1)
    assert got == [DIGEST] * 5


def test_nothing_listening_is_unknown():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert head_digests(f"127.0.0.1:{port}", [("ok", "1")], timeout=1) == [None]


@pytest.mark.parametrize("raw, expected", [
    (b"HTTP/1.1 200 OK\r\nDocker-Content-Digest:  d \r\nX: y", (200, {
        "docker-content-digest": "d", "x": "y"})),
    (b"HTTP/1.0 404 Not Found", (404, {})),
    (b"SSH-2.0-OpenSSH", None),
    (b"HTTP/1.1 abc", None),
])
def test_parse_head(raw, expected):
    assert parse_head(raw) == expected


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)),
    ("registry", ("registry", 80)),
    ("[::1]:5001", ("::1", 5001)),
    ("[::1]", ("::1", 80)),
])
def test_split_hostport(text, expected):
    assert split_hostport(text) == expected
