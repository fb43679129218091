"""Benchmark: `pi-prep.flash` write + verify of a 1 GB image (raw and .img.xz) to a loop device,
against `dd bs=4M conv=fsync` + `cmp` (for .xz: `xz -dc | dd ...` + `cmp`), in one run.

    python bench/flash/bench.py [--size-mb 1024] [--rounds 3]

Root (loop devices). The loop device is made here over a sparse file in the work directory
and always detached. Every side runs as a whole process, alternating, from the same state:
the image file warm in the page cache, the loop device's and its backing file's cache dropped
(posix_fadvise, no global drop_caches). greenroom's side is flash's real code path without
the boot preparation (board None), the loop device accepted through the tests' allow list;
its read-back reads the device past the page cache (O_DIRECT), while the peer's `cmp` reads
the device through the cache dd just filled. Prints a Markdown table of medians and ratios,
wall time and the CPU time of the processes each side started (kernel loop workers aside),
which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("GREENROOM_BENCH_DIR", "/var/tmp/greenroom-bench-flash"))
MiB = 1024 * 1024

OURS = """
import sys
from runbooks.pi_prep.flash.run import flash
image, device = sys.argv[1], sys.argv[2]
flash(image, device, None, yes=True, allowed_loops={device}, out=lambda _: None,
      show_progress=False)
"""


def make_image(size_mb: int) -> tuple[Path, Path]:
    """A raw image like a board's: 30 % random (binaries), 20 % text-like, the rest zeros;
    and its .xz (xz -T0 -6, multi-block as distributions publish them)."""
    WORK.mkdir(parents=True, exist_ok=True)
    raw = WORK / f"bench-{size_mb}.img"
    packed = WORK / f"bench-{size_mb}.img.xz"
    if not raw.exists() or raw.stat().st_size != size_mb * MiB:
        random_mb, text_mb = size_mb * 3 // 10, size_mb * 2 // 10
        text = (b"".join(f"line {i}: the quick brown fox jumps over rp{i % 7}\n".encode()
                         for i in range(20000)) * 64)[:MiB]
        with open(raw.with_suffix(".part"), "wb") as f:
            for _ in range(random_mb):
                f.write(os.urandom(MiB))
            for _ in range(text_mb):
                f.write(text)
            f.truncate(size_mb * MiB)
        raw.with_suffix(".part").rename(raw)
        packed.unlink(missing_ok=True)
    if not packed.exists():
        subprocess.run(["xz", "-T0", "-6", "-k", "-f", str(raw)], check=True)
    return raw, packed


def drop(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 * MiB):
            pass


def timed(command: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of every process it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, shell=True, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--card-dir", default=str(WORK),
                        help="where the loop device's backing file lives: a disk directory "
                             "(default; the device is the bottleneck, as a card is) or "
                             "/dev/shm (memory: only the tools' own CPU cost)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the flash benchmark needs root (loop devices)")
    raw, packed = make_image(args.size_mb)
    backing = Path(args.card_dir) / "greenroom-bench-card.bin"
    with open(backing, "wb") as f:
        f.truncate((args.size_mb + 64) * MiB)
    device = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                            capture_output=True, text=True).stdout.strip()
    size = raw.stat().st_size
    sides = {
        ("raw", "dd + cmp"): f"dd if={raw} of={device} bs=4M conv=fsync status=none && "
                             f"cmp -n {size} {raw} {device}",
        ("raw", "greenroom"): f"{sys.executable} -c '{OURS}' {raw} {device}",
        ("xz", "xz -dc, dd + cmp"): f"xz -dc {packed} | dd of={device} bs=4M conv=fsync "
                                     f"status=none && cmp -n {size} {raw} {device}",
        ("xz", "greenroom"): f"{sys.executable} -c '{OURS}' {packed} {device}",
    }
    times: dict[tuple[str, str], list[float]] = {key: [] for key in sides}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in sides}
    try:
        warm(raw)
        warm(packed)
        for _ in range(args.rounds):
            for key, command in sides.items():
                drop(device)
                drop(str(backing))
                wall, used = timed(command)
                times[key].append(wall)
                cpu[key].append(used)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        backing.unlink(missing_ok=True)
    print(f"{args.size_mb} MiB image, card backed in {args.card_dir}, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| image | tool | median (s) | runs (s) | MB/s | vs peer | CPU (s) | CPU vs peer |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("raw", "xz"):
        peer = next(k for k in sides if k[0] == kind and k[1] != "greenroom")
        base = statistics.median(times[peer])
        cpu_base = statistics.median(cpu[peer])
        for key in (peer, (kind, "greenroom")):
            median = statistics.median(times[key])
            used = statistics.median(cpu[key])
            runs = ", ".join(f"{t:.2f}" for t in times[key])
            print(f"| {kind} | {key[1]} | {median:.2f} | {runs} | {size / median / 1e6:.0f} "
                  f"| {median / base:.2f}x | {used:.2f} | {used / cpu_base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
