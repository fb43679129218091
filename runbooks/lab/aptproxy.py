"""The lab's apt proxy: an HTTP proxy on the management bridge that reaches only the mirrors
named in this machine's apt sources.

Guests point apt at it (``Acquire::http::Proxy``), so package installs work without any
routing or NAT in the machine's namespace. Plain ``GET``/``HEAD`` with an absolute URI is
forwarded; ``CONNECT`` is allowed to port 443 of the same hosts; everything else is 403.
With ``--cache DIR`` the packages under ``pool/`` are kept once per machine
(:mod:`runbooks.lab.aptcache`) and served from there the next time any guest asks.
Each request to a mirror is logged as ``upstream METHOD URL``, each cache answer as
``cache hit KEY``.
Run: ``python3 -m runbooks.lab.aptproxy --listen ADDR:PORT --allow HOST [--allow HOST...]
[--cache DIR] [--cache-max BYTES]``.
"""

from __future__ import annotations

import argparse
import http.client
import select
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from runbooks.lab.aptcache import DEFAULT_MAX_BYTES, DebCache, cache_key

HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
               "te", "trailers", "transfer-encoding", "upgrade"}
# a cached file is fetched whole: these would make the upstream answer 206 or 304
PARTIAL_HEADERS = {"range", "if-range", "if-modified-since", "if-none-match",
                   "if-unmodified-since", "if-match"}


class ProxyHandler(BaseHTTPRequestHandler):
    """Forward allowed requests; refuse the rest with 403."""

    allowed: frozenset[str] = frozenset()
    cache: DebCache | None = None
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("aptproxy: " + (format % args) + "\n")

    def _refuse(self, why: str) -> None:
        body = f"greenroom lab apt proxy: {why}\n".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            return self._refuse("only absolute http:// URLs are proxied")
        if url.hostname not in self.allowed:
            return self._refuse(f"{url.hostname} is not a mirror of this machine's apt sources")
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        key = cache_key(url.hostname, path) if self.cache else None
        if key and self._answer_from_cache(key):
            return None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS
                   and not (key and k.lower() in PARTIAL_HEADERS)}
        sys.stderr.write(f"aptproxy: upstream {self.command} {self.path}\n")
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        try:
            try:
                conn.request(self.command, path, headers=headers)
                resp = conn.getresponse()
            except OSError as exc:
                return self.send_error(502, f"upstream error: {exc}")
            self.send_response(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            for name, value in resp.getheaders():
                if name.lower() not in HOP_HEADERS | {"server", "date"}:
                    self.send_header(name, value)
            if length is None and self.command != "HEAD":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return None
            if key and resp.status == 200 and length is not None and length.isdigit():
                self._store(key, resp, int(length))
            else:
                self._relay(resp)
        finally:
            conn.close()
        return None

    def _relay(self, resp: http.client.HTTPResponse) -> None:
        """Copy the upstream body to the client; a broken stream closes the connection."""
        try:
            while chunk := resp.read(65536):
                self.wfile.write(chunk)
        except OSError:
            self.close_connection = True

    def _store(self, key: str, resp: http.client.HTTPResponse, length: int) -> None:
        """Copy the body to the client and into the cache; the download is finished for
        the cache even when the client goes away, and dropped when it comes up short."""
        assert self.cache is not None
        client_ok = True
        held = b""   # the last chunk reaches the client only once the entry is in place
        try:
            with self.cache.writer(key, length) as out:
                while chunk := resp.read(65536):
                    out.write(chunk)
                    if client_ok and held:
                        client_ok = self._send(held)
                    held = chunk
            sys.stderr.write(f"aptproxy: cache store {key}\n")
        except OSError as exc:
            sys.stderr.write(f"aptproxy: not cached {key}: {exc}\n")
            client_ok = False
        if client_ok and held:
            client_ok = self._send(held)
        if not client_ok:
            self.close_connection = True

    def _send(self, chunk: bytes) -> bool:
        """Write ``chunk`` to the client; False when the client has gone."""
        try:
            self.wfile.write(chunk)
        except OSError:
            return False
        return True

    def _answer_from_cache(self, key: str) -> bool:
        """Serve ``key`` from the cache when it is there (the whole file, status 200)."""
        assert self.cache is not None
        hit = self.cache.open(key)
        if hit is None:
            return False
        handle, size = hit
        with handle:
            sys.stderr.write(f"aptproxy: cache hit {key}\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.debian.binary-package")
            self.send_header("Content-Length", str(size))
            self.send_header("X-Greenroom-Cache", "hit")
            self.end_headers()
            if self.command == "GET":
                try:
                    while chunk := handle.read(65536):
                        self.wfile.write(chunk)
                except OSError:
                    self.close_connection = True
        return True

    do_GET = _forward
    do_HEAD = _forward

    def do_CONNECT(self) -> None:  # noqa: N802
        """Tunnel TLS to an allowed mirror on port 443."""
        host, _, port = self.path.partition(":")
        if host not in self.allowed or port != "443":
            return self._refuse(f"CONNECT {self.path} refused")
        try:
            upstream = socket.create_connection((host, 443), timeout=30)
        except OSError as exc:
            return self.send_error(502, f"upstream error: {exc}")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        with upstream:
            while True:
                ready, _, _ = select.select(sockets, [], [], 60)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)


def make_server(listen: str, allowed: list[str],
                cache: DebCache | None = None) -> ThreadingHTTPServer:
    """A proxy server bound to ``listen`` (ADDR:PORT; port 0 picks a free one)."""
    addr, _, port = listen.rpartition(":")
    handler = type("LabProxyHandler", (ProxyHandler,),
                   {"allowed": frozenset(allowed), "cache": cache})
    server = ThreadingHTTPServer((addr, int(port)), handler)
    server.daemon_threads = True
    return server


def serve(listen: str, allowed: list[str], cache: DebCache | None = None) -> None:
    """Serve forever on ``listen`` (ADDR:PORT)."""
    make_server(listen, allowed, cache).serve_forever()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--tag", default="", help="ignored; marks the process as the lab's")
    parser.add_argument("--cache", default="", help="keep pool/ packages in this directory")
    parser.add_argument("--cache-max", type=int, default=DEFAULT_MAX_BYTES,
                        help="bytes the cache may hold (least recently used go first)")
    args = parser.parse_args()
    cache = DebCache(Path(args.cache), args.cache_max) if args.cache else None
    serve(args.listen, args.allow, cache)


if __name__ == "__main__":
    main()
