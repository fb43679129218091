"""The no-op fast path: HEAD each target tag with the stdlib and compare with the lock.

A re-run where everything is present costs one HEAD per image and no `requests` import
(which alone costs more than the requests themselves on a small machine). Only for plain
HTTP registries that answer without authentication; anything else ("unknown") goes through
the full client, as does every image whose digest differs.
"""

from __future__ import annotations

import http.client
import queue
import threading

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
