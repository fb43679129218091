"""The upstream "internet" of the lab: an HTTP server that logs each client's address.

Runs inside the lab's upstream namespace; every request appends ``CLIENT_IP METHOD PATH``
to the log file, so NAT tests can see which address reached the upstream.
Run: ``python3 -m runbooks.lab.upstream --port 80 --log FILE``.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoggingHandler(BaseHTTPRequestHandler):
    """Answer every GET with 200 and log the client address."""

    log_path = "/dev/null"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        with open(self.log_path, "a") as log:
            log.write(f"{self.client_address[0]} {self.command} {self.path}\n")
        body = f"greenroom lab upstream: hello {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    LoggingHandler.log_path = args.log
    ThreadingHTTPServer(("0.0.0.0", args.port), LoggingHandler).serve_forever()


if __name__ == "__main__":
    main()
