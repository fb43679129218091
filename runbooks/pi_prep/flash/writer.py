"""Write an image stream to a device, then read the device back and compare by hash.

The stream is read on one thread and written (and hashed, XXH3-128) on another, in 4 MiB
chunks, so reading or decompressing overlaps the device. The device is opened with O_EXCL
(the kernel refuses a device that is mounted or held) and synced at the end. The read-back
bypasses the page cache (O_DIRECT, else the device's cache is dropped first), so it checks
what the card holds, not what we just handed to the kernel.
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

CHUNK = 4 * 1024 * 1024
ALIGN = 4096
BLKRRPART = 0x125F
T = TypeVar("T")


class ReadsInto(Protocol):
    def readinto(self, buffer: Any, /) -> int | None: ...


class WriteError(RuntimeError):
    """Writing or verifying failed; the message says what to do."""


@dataclass(frozen=True)
class Written:
    size: int
    digest: str  # XXH3-128, hex


def _ahead(items: Iterable[T], depth: int = 4,
           dropped: Callable[[T], Any] | None = None) -> Iterator[T]:
    """`items`, produced on a separate thread up to `depth` ahead of the consumer;
    `dropped` gets the items the consumer never took (when it stops early)."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                box.put(("item", item))
            box.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            box.put(("error", exc))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            tag, value = box.get()
            if tag == "end":
                return
            if tag == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                tag, value = box.get(timeout=0.1)
            except queue.Empty:
                continue
            if tag == "item" and dropped is not None:
                dropped(value)
        worker.join()


def new_digest() -> Any:
    """The hash the write and the read-back are compared by: XXH3-128 (xxhash), which is
    ~15x faster than sha256 here, so comparing costs no time on any card. It guards against
    a failing or fake card, not an adversary (the image's own checksum does that)."""
    import xxhash

    return xxhash.xxh3_128()


@contextmanager
def progress(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], Any]]:
    """A progress bar in bytes and MB/s on stderr (tqdm); yields `advance(nbytes)`."""
    if not enabled:
        yield lambda _: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1000,
              mininterval=0.5, dynamic_ncols=True) as bar:
        yield bar.update


def _filled(source: ReadsInto, buf: bytearray) -> int:
    """Read into `buf` until it is full or the stream ends (pipes give short reads)."""
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = source.readinto(view[got:])
        if not n:
            break
        got += n
    view.release()
    return got


def write_stream(device: str, source: ReadsInto, total: int | None = None,
                 show: bool = True) -> Written:
    """Write what `source` holds to the start of `device`; return its size and digest.

    `source` is read into a few reused buffers on a separate thread (no fresh memory per
    chunk), while this thread writes and hashes the previous one."""
    size = 0
    try:
        fd = os.open(device, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        raise WriteError(f"cannot open {device} for writing ({exc.strerror}): something holds "
                         "it (a mount, a desktop automounter); unmount it and try again") from None
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(6):  # more than can be in flight: the reader never waits for one
        free.put(bytearray(CHUNK))

    def reads() -> Iterator[tuple[bytearray, int]]:
        while True:
            buf = free.get()
            length = _filled(source, buf)
            if not length:
                return
            yield buf, length

    digest = new_digest()
    try:
        with progress("write", total, show) as advance:
            for buf, length in _ahead(reads(), depth=3, dropped=lambda item: free.put(item[0])):
                with memoryview(buf) as whole:
                    view = whole[:length]
                    digest.update(view)
                    while view:
                        try:
                            done = os.write(fd, view)
                        except OSError as exc:
                            raise WriteError(f"writing {device} failed at byte {size} "
                                             f"({exc.strerror}); the card may be too small, "
                                             "locked or failing") from None
                        view = view[done:]
                        size += done
                free.put(buf)
                advance(length)
        os.fsync(fd)
        _reread_partitions(fd)
    finally:
        os.close(fd)
    return Written(size, digest.hexdigest())


def _reread_partitions(fd: int) -> None:
    """Ask the kernel to read the new partition table (a loop without partscan says no)."""
    import fcntl

    try:
        fcntl.ioctl(fd, BLKRRPART)
    except OSError:
        pass


def _open_uncached(device: str) -> tuple[int, bool]:
    """An fd reading `device` past the page cache: O_DIRECT, else drop its cache first."""
    try:
        return os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC), True
    except OSError:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return fd, False


def read_back(device: str, size: int, show: bool = True) -> str:
    """The digest of the first `size` bytes of `device`, read from the device itself."""
    fd, direct = _open_uncached(device)
    buffers: queue.Queue[mmap.mmap] = queue.Queue()
    for _ in range(6):  # more than can be in flight: the reader never waits for one
        buffers.put(mmap.mmap(-1, CHUNK))  # page aligned, as O_DIRECT needs

    def reads() -> Iterator[tuple[mmap.mmap, int]]:
        offset = 0
        while offset < size:
            buf = buffers.get()
            want = min(CHUNK, size - offset)
            aligned = -(-want // ALIGN) * ALIGN if direct else want
            view = memoryview(buf)[:aligned]
            got = os.preadv(fd, [view], offset)
            view.release()
            if got < want:
                raise WriteError(f"{device} ended after {offset + got} bytes while reading "
                                 f"back {size}; the card is smaller than it claims")
            yield buf, want
            offset += want

    digest = new_digest()
    try:
        with progress("verify", size, show) as advance:
            for buf, length in _ahead(reads(), depth=2):
                with memoryview(buf) as view:
                    digest.update(view[:length])
                buffers.put(buf)
                advance(length)
    finally:
        os.close(fd)
    return digest.hexdigest()


def sync_device(device: str) -> None:
    """Flush what tools wrote through the device node (mtools) to the medium."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
