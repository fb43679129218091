"""Progress in bytes: a tqdm bar on stderr when it is a terminal, and one line per image.

Per-image lines go to stdout always (they are the report), written through tqdm so they
never tear the bar; the bar only goes to a tty stderr. tqdm is imported only when a bar is
drawn — at the first bytes planned, so listing tasks, a run without a terminal or a run with
nothing to copy never pays for it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

MB = 1_000_000


def human_mb(n: float) -> str:
    """Bytes as megabytes with one decimal."""
    return f"{n / MB:.1f} MB"


class Progress:
    """Thread-safe byte counter that drives a bar and prints finished images."""

    def __init__(self, images: int, out: TextIO | None = None, err: TextIO | None = None,
                 bar: bool | None = None):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.images, self.done, self.total, self.sent = images, 0, 0, 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._want_bar = self.err.isatty() if bar is None else bar

    def _start_bar(self) -> None:
        """Draw the bar (with the lock held), once there are bytes to show."""
        from tqdm import tqdm

        self._want_bar = False
        self._bar = tqdm(total=0, file=self.err, unit="B", unit_scale=True,
                         unit_divisor=1000, dynamic_ncols=True, leave=False,
                         desc=self._desc(), mininterval=0.1)

    @property
    def bar(self) -> bool:
        """Whether a bar is drawn (or will be, at the first bytes planned)."""
        return self._bar is not None or self._want_bar

    def _desc(self) -> str:
        return f"{self.done}/{self.images} images"

    def add_total(self, n: int) -> None:
        """More bytes are expected (an image's blobs were planned)."""
        with self._lock:
            self.total += n
            if self._want_bar and n > 0:
                self._start_bar()
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()

    def advance(self, n: int) -> None:
        """Bytes were sent (negative when an attempt is rolled back)."""
        with self._lock:
            self.sent += n
            if self._bar is not None:
                self._bar.update(n)

    def image_done(self, result: Any) -> None:
        """Print one line for a finished image."""
        mark = {"copied": "copied ", "skipped": "present", "failed": "FAILED "}[result.status]
        line = f"{mark} {result.spec.source} -> {result.spec.target}: {result.detail}"
        with self._lock:
            self.done += 1
            if self._bar is None:
                self.out.write(line + "\n")
                self.out.flush()
                return
            self._bar.write(line, file=self.out)  # clears the bar, writes, redraws it
            self._bar.set_description_str(self._desc())

    def finish(self) -> None:
        """Remove the bar."""
        with self._lock:
            self._want_bar = False
            if self._bar is not None:
                self._bar.close()
                self._bar = None
