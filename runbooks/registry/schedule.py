"""A fixed pool of worker threads over one priority queue, where tasks may submit tasks.

The copy engine puts every piece of work in it (resolving an image, one blob, one mount,
one image's manifests), so the workers are never tied to an image: whichever task matters
most runs next, and a big image's layers spread over every idle worker.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = (float("inf"),)


class Scheduler:
    """Runs submitted tasks on `workers` threads, lowest priority tuple first (FIFO on ties).

    A task must handle its own errors; one that raises anyway is recorded in `errors` and
    the others go on.
    """

    def __init__(self, workers: int):
        self.workers = max(workers, 1)
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()
        self._pending = 0
        self._idle = threading.Condition()
        self.errors: list[BaseException] = []

    def submit(self, priority: tuple, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)`; safe from any thread, including from inside a task."""
        with self._idle:
            self._pending += 1
        self._queue.put((priority, next(self._seq), fn, args))

    def _work(self) -> None:
        while True:
            priority, _, fn, args = self._queue.get()
            if priority == _STOP:
                return
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - recorded; the other tasks go on
                self.errors.append(exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def run(self, seed: Callable[[], None]) -> None:
        """Start the workers, let `seed()` submit the first tasks, return when all are done."""
        threads = [threading.Thread(target=self._work, name=f"copy-{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            with self._idle:
                self._pending += 1                      # seed() itself counts as a task
            try:
                seed()
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.wait_for(lambda: self._pending == 0)
        finally:
            for _ in threads:
                self._queue.put((_STOP, next(self._seq), None, ()))
            for t in threads:
                t.join()
