"""The no-op fast path: HEAD each target tag with the stdlib and compare with the lock.

A re-run where everything is present costs one HEAD per image and no `requests` import
(which alone costs more than the requests themselves on a small machine). Only for plain
HTTP registries that answer without authentication; anything else ("unknown") goes through
the full client, as does every image whose digest differs.
"""

from __future__ import annotations

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

from .manifests import ACCEPT


def head_digests(host: str, items: list[tuple[str, str]], jobs: int = 8,
                 timeout: float = 5.0) -> list[str | None]:
    """Docker-Content-Digest of each `(repo, tag)` on `host` over plain HTTP.

    Returns the digest, "" when the tag is absent, or None when the answer was unusable
    (auth required, error, no digest header): the caller then uses the full client.
    """
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def head(item: tuple[str, str]) -> str | None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host, timeout=timeout)
            opened.append(conn)
        repo, tag = item
        try:
            conn.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            local.conn = None
            return None
        if resp.status == 404:
            return ""
        if resp.status != 200:
            return None
        return resp.getheader("Docker-Content-Digest")

    workers = max(1, min(jobs, len(items), 8))
    try:
        if workers == 1:
            return [head(i) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(head, items))
    finally:
        for conn in opened:
            conn.close()
