"""Progress in bytes: a live bar on stderr when it is a terminal, and one line per image.

Per-image lines go to stdout always (they are the report); the bar only to a tty stderr.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

MB = 1_000_000


def human_mb(n: float) -> str:
    """Bytes as megabytes with one decimal."""
    return f"{n / MB:.1f} MB"


class Progress:
    """Thread-safe byte counter that draws a bar (throttled) and prints finished images."""

    def __init__(self, images: int, out: TextIO | None = None, err: TextIO | None = None,
                 bar: bool | None = None):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.bar = self.err.isatty() if bar is None else bar
        self.images, self.done, self.total, self.sent = images, 0, 0, 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._drawn = 0.0

    def add_total(self, n: int) -> None:
        """More bytes are expected (an image's blobs were planned)."""
        with self._lock:
            self.total += n
        self._draw()

    def advance(self, n: int) -> None:
        """Bytes were sent (negative when an attempt is rolled back)."""
        with self._lock:
            self.sent += n
        self._draw()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        frac = self.sent / self.total if self.total else 0.0
        filled = int(frac * 30)
        return (f"[{'#' * filled}{'.' * (30 - filled)}] {human_mb(self.sent)}/"
                f"{human_mb(self.total)} {self.sent / MB / elapsed:.1f} MB/s "
                f"{self.done}/{self.images} images")

    def _draw(self, force: bool = False) -> None:
        if not self.bar:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        with self._lock:
            self.err.write("\r\033[K" + self._line())
            self.err.flush()

    def image_done(self, result: Any) -> None:
        """Print one line for a finished image."""
        with self._lock:
            self.done += 1
            if self.bar:
                self.err.write("\r\033[K")
                self.err.flush()
            mark = {"copied": "copied ", "skipped": "present", "failed": "FAILED "}[result.status]
            self.out.write(f"{mark} {result.spec.source} -> {result.spec.target}: "
                           f"{result.detail}\n")
            self.out.flush()
        self._draw(force=True)

    def finish(self) -> None:
        """Remove the bar."""
        if self.bar:
            self.err.write("\r\033[K")
            self.err.flush()
