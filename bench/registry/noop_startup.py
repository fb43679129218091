"""The whole-process cost of a 16-image `load-images` no-op, as users start it, in one run.

Pushes the seed-like set (bench.py's `seed` shape; layer sizes do not matter to a no-op, so
`--scale 0.01`) into a local source `docker-registry`, copies it once into a target, then
times, taking turns, `--runs` no-op runs of each command below as whole processes (wall and
CPU time: user + system of the process and its children):

- `inv registry.load-images ...` from this checkout (tasks.py answers it before any
  collection loads) and, with `--compare-at LABEL=DIR`, from another checkout (e.g. main
  before that change, exported with `git archive`);
- `python -m runbooks.registry load-images ...` (answered before Invoke is imported);
- `python -c "import invoke"`: Invoke's import alone, what every `inv` command pays first.

Each command runs twice over: with the project byte-compiled (as after `pip install`), and
from a copy of the project without .pyc files under PYTHONDONTWRITEBYTECODE=1, as `inv`
leaves a checkout (Invoke never writes .pyc files; Python's and Invoke's own stay compiled).
All traffic stays on loopback; temp directories are removed.

Usage: python bench/registry/noop_startup.py [--runs 15] [--compare-at main=/tmp/main]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
from tests.registry.regkit import Registry  # noqa: E402


def timed(cmd: str, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one shell command; exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or ("load-images" in cmd and "copied 0," not in done.stdout):
        raise SystemExit(f"{cmd}: exit {done.returncode}\n{done.stdout[-500:]}{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def copy_without_pyc(where: str, to: Path) -> str:
    """What `inv` reads of a checkout (tasks.py, invoke.yaml, runbooks/, files/, hosts/),
    copied to `to` without any .pyc."""
    to.mkdir()
    for name in ("tasks.py", "invoke.yaml"):
        if (Path(where) / name).exists():
            shutil.copy2(Path(where) / name, to / name)
    for name in ("runbooks", "files", "hosts"):
        shutil.copytree(Path(where) / name, to / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(to)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="no-op runs per command (taking turns)")
    ap.add_argument("--compare-at", action="append", default=[], metavar="LABEL=DIR",
                    help="also time `inv registry.load-images` from another checkout")
    args = ap.parse_args()
    py = sys.executable
    inv = str(Path(py).parent / "inv")
    checkouts = [("this checkout", str(ROOT))]
    for item in args.compare_at:
        label, _, where = item.partition("=")
        if not (where and (Path(where) / "tasks.py").is_file()):
            raise SystemExit(f"--compare-at {item}: want LABEL=DIR, DIR a checkout of greenroom")
        checkouts.append((label, str(Path(where).resolve())))
    for _, where in checkouts:
        subprocess.run([py, "-m", "compileall", "-q", f"{where}/runbooks", f"{where}/tasks.py"],
                       check=True, stdout=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="greenroom-noop-") as tmp:
        work = Path(tmp)
        src, dst = Registry(work / "source"), Registry(work / "target")
        try:
            refs, _ = bench.generate(src.host, bench.SHAPES["seed"](), 0.01)
            listing = work / "images.txt"
            listing.write_text("".join(f"{src.host}/{r}\n" for r in refs))
            opts = (f"--images {listing} --to {dst.host} --all-platforms "
                    f"--lock {work / 'all.lock'} -j 8")
            subprocess.run(f"{py} -m runbooks.registry load-images {opts}", shell=True,
                           cwd=ROOT, check=True, capture_output=True)
            copies = {where: copy_without_pyc(where, work / f"copy-{i}")
                      for i, (_, where) in enumerate(checkouts)}

            def commands(at: dict[str, str]) -> list[tuple[str, str, str]]:
                out = [(f"inv registry.load-images ({label})",
                        f"{inv} registry.load-images {opts}", at[where])
                       for label, where in checkouts]
                return out + [("python -m runbooks.registry load-images",
                               f"{py} -m runbooks.registry load-images {opts}", at[str(ROOT)]),
                              ("python -c 'import invoke' (Invoke alone)",
                               f"{py} -c 'import invoke'", at[str(ROOT)])]

            variants = {"byte-compiled": (commands({w: w for _, w in checkouts}), {}),
                        "no .pyc": (commands(copies), {"PYTHONDONTWRITEBYTECODE": "1"})}
            found: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.runs):
                for variant, (lines, extra) in variants.items():
                    env = dict(os.environ) | extra
                    for name, cmd, cwd in lines:
                        found.setdefault((name, variant), []).append(timed(cmd, cwd, env))
        finally:
            src.stop()
            dst.stop()
            shutil.rmtree(work, ignore_errors=True)
    print(f"{os.cpu_count()} CPUs, load average before/after {load:.1f} / "
          f"{os.getloadavg()[0]:.1f}; 16 images, no-op; {args.runs} runs each, taking turns\n")
    print("| command | .pyc | wall min (s) | wall median (s) | CPU min (s) | CPU median (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, variant), rows in found.items():
        walls, cpus = [w for w, _ in rows], [c for _, c in rows]
        print(f"| {name} | {variant} | {min(walls):.3f} | {statistics.median(walls):.3f} | "
              f"{min(cpus):.3f} | {statistics.median(cpus):.3f} |")


if __name__ == "__main__":
    main()
