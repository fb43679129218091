"""The lab's apt proxy: an HTTP proxy on the management bridge that reaches only the mirrors
named in this machine's apt sources.

Guests point apt at it (``Acquire::http::Proxy``), so package installs work without any
routing or NAT in the machine's namespace. Plain ``GET``/``HEAD`` with an absolute URI is
forwarded; ``CONNECT`` is allowed to port 443 of the same hosts; everything else is 403.
Run: ``python3 -m runbooks.lab.aptproxy --listen ADDR:PORT --allow HOST [--allow HOST...]``.
"""

from __future__ import annotations

import argparse
import http.client
import select
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
               "te", "trailers", "transfer-encoding", "upgrade"}


class ProxyHandler(BaseHTTPRequestHandler):
    """Forward allowed requests; refuse the rest with 403."""

    allowed: frozenset[str] = frozenset()
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
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        try:
            conn.request(self.command, path, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            for key, value in resp.getheaders():
                if key.lower() not in HOP_HEADERS:
                    self.send_header(key, value)
            if length is None and self.command != "HEAD":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                while chunk := resp.read(65536):
                    self.wfile.write(chunk)
        except OSError as exc:
            self.send_error(502, f"upstream error: {exc}")
        finally:
            conn.close()

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


def serve(listen: str, allowed: list[str]) -> None:
    """Serve forever on ``listen`` (ADDR:PORT)."""
    addr, _, port = listen.rpartition(":")
    ProxyHandler.allowed = frozenset(allowed)
    server = ThreadingHTTPServer((addr, int(port)), ProxyHandler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--tag", default="", help="ignored; marks the process as the lab's")
    args = parser.parse_args()
    serve(args.listen, args.allow)


if __name__ == "__main__":
    main()
