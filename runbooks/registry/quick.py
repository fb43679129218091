"""The no-op fast path: HEAD each target tag over plain HTTP and compare with the lock.

A re-run where everything is present costs one HEAD per image over a few kept-alive
connections, and neither `requests` nor `http.client` is imported (on a small machine their
imports cost more CPU than the requests: http.client alone pulls in the email parser and
ssl). A HEAD answer has a status line and headers only, which is all this reads; anything
it does not expect (auth required, an error, no digest header, a malformed answer, a
closed connection twice) is "unknown", and such an image goes through the full client, as
does every image whose digest differs.
"""

from __future__ import annotations

import queue
import socket
import threading

from .manifests import ACCEPT

MAX_HEADER = 65536


def split_hostport(host: str) -> tuple[str, int]:
    """("127.0.0.1", 5000) from "127.0.0.1:5000" (port 80 when none; [v6] brackets kept off)."""
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or "]" in port:
        return host.strip("[]"), 80
    return name.strip("[]"), int(port)


def parse_head(raw: bytes) -> tuple[int, dict[str, str]] | None:
    """(status, lower-cased headers) of a raw HTTP/1.x answer to HEAD, or None."""
    try:
        text = raw.decode("latin-1")
    except ValueError:  # pragma: no cover - latin-1 decodes every byte
        return None
    status_line, *lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class _Connection:
    """One kept-alive connection sending HEAD requests, one at a time."""

    def __init__(self, host: str, timeout: float) -> None:
        self.host, self.timeout = host, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def head(self, path: str) -> tuple[int, dict[str, str]] | None:
        """The answer to HEAD `path`; one retry on a fresh connection if the kept-alive one
        was closed by the server; None when there is no usable answer."""
        for _ in range(2):
            fresh = self.sock is None
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(split_hostport(self.host),
                                                         timeout=self.timeout)
                self.sock.sendall(
                    (f"HEAD {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: {ACCEPT}\r\n"
                     "User-Agent: greenroom\r\n\r\n").encode("ascii"))
                raw = self._read_header()
            except OSError:
                raw = None
            if raw is None:
                self.close()
                if fresh:
                    return None
                continue
            answer = parse_head(raw)
            if answer is None or answer[1].get("connection", "").lower() == "close":
                self.close()
            return answer
        return None

    def _read_header(self) -> bytes | None:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk or len(self.buffer) > MAX_HEADER:
                return None
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return raw


def head_digests(host: str, items: list[tuple[str, str]], jobs: int = 8,
                 timeout: float = 5.0) -> list[str | None]:
    """Docker-Content-Digest of each `(repo, tag)` on `host` over plain HTTP.

    Returns the digest, "" when the tag is absent, or None when the answer was unusable
    (auth required, error, no digest header): the caller then uses the full client.
    """
    local = threading.local()
    opened: list[_Connection] = []

    def head(item: tuple[str, str]) -> str | None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = _Connection(host, timeout)
            opened.append(conn)
        repo, tag = item
        answer = conn.head(f"/v2/{repo}/manifests/{tag}")
        if answer is None:
            return None
        status, headers = answer
        if status == 404:
            return ""
        if status != 200:
            return None
        return headers.get("docker-content-digest")

    workers = max(1, min(jobs, len(items), 8))
    results: list[str | None] = [None] * len(items)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(items)):
        todo.put(index)

    def work() -> None:
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            results[index] = head(items[index])

    # plain threads: concurrent.futures would import logging, for 16 HEADs
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
    try:
        for thread in threads:
            thread.start()
        work()
        for thread in threads:
            thread.join()
        return results
    finally:
        for conn in opened:
            conn.close()
