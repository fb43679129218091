"""Benchmark `registry.load-images` against skopeo and a curl floor, on loopback, in one run.

For each generated shape of image set (see SHAPES), pushes the set into a local source
`docker-registry`, then times, each against a fresh empty target registry (cold) and again
with everything present (no-op), as whole processes: greenroom (`python -m runbooks.registry
load-images --all-platforms`), a sequential `skopeo copy --all` loop, the same loop under
`xargs -P8`, `skopeo sync --all`, and the floor: every unique blob fetched and pushed once,
every cross-repository mount and every manifest uploaded, by `curl` under `xargs -P<jobs>`
from lists computed beforehand (no discovery, no checks). Prints a Markdown table with ratios;
`--out FILE` also writes it.

Usage: python bench/registry/bench.py [--scale 1.0] [--shapes seed,large,...] [--jobs 8]
                                      [--arm64] [--out bench/registry/results.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.registry.regkit import Builder, Registry  # noqa: E402

MB = 1_000_000
LOAD: list[str] = []
TMP: list[str] = []
REPEAT: list[int] = []
TWO = [("amd64", None), ("arm64", None)]
THREE = [("amd64", None), ("arm64", "v8"), ("arm", "v7")]


@dataclass
class Image:
    """One tag of a generated set: per platform, its layers as (content name, MB)."""

    repo: str
    tag: str
    platforms: list[tuple[str, str | None]]
    layers: Callable[[str], list[tuple[str, float]]]      # arch -> layers
    kind: str = "docker"                                   # docker, oci (index) or single


@dataclass
class Shape:
    name: str
    what: str
    images: list[Image] = field(default_factory=list)


def _seed() -> Shape:
    """The seed's 16 tags: Docker manifest lists, amd64+arm64, shared base layers."""
    rows = [
        ("kube-apiserver", ["v1.21.14", "v1.21.8"], [28.0], "kube"),
        ("kube-controller-manager", ["v1.21.14", "v1.21.8"], [26.0], "kube"),
        ("kube-scheduler", ["v1.21.14", "v1.21.8"], [12.0], "kube"),
        ("kube-proxy", ["v1.21.14", "v1.21.8"], [18.0, 12.0], "kube"),
        ("pause", ["3.4.1", "3.6", "3.2"], [0.3], None),
        ("etcd", ["3.4.13-0"], [24.0, 8.0], "kube"),
        ("coredns/coredns", ["v1.8.0"], [12.0], "kube"),
        ("kube-vip/kube-vip", ["v0.4.0"], [11.0], "alpine"),
        ("rancher/mirrored-flannelcni-flannel-cni-plugin", ["v1.1.0"], [3.0], "alpine"),
        ("rancher/mirrored-flannelcni-flannel", ["v0.19.2"], [14.0, 5.0], "alpine"),
    ]
    bases = {"kube": 2.0, "alpine": 2.8}
    shape = Shape("seed-like", "the seed's 16 tags, Docker lists, 2 platforms, shared bases")
    for repo, tags, sizes, base in rows:
        for tag in tags:
            def layers(arch, repo=repo, tag=tag, sizes=sizes, base=base):
                out = [(f"base-{base}-{arch}", bases[base])] if base else []
                return out + [(f"{repo}-{tag}-{arch}-{i}", s) for i, s in enumerate(sizes)]
            shape.images.append(Image(repo, tag, TWO, layers))
    return shape


def _large() -> Shape:
    """Few images; one of them carries several large layers."""
    shape = Shape("few, large layers", "4 tags; one with 6 layers of 40 MB per platform")
    spec = [("models/big", [40.0] * 6), ("tools/medium", [24.0, 16.0]),
            ("tools/small", [6.0]), ("tools/tiny", [0.5])]
    for repo, sizes in spec:
        shape.images.append(Image(repo, "v1", TWO, lambda arch, repo=repo, sizes=sizes: [
            (f"{repo}-{arch}-{i}", s) for i, s in enumerate(sizes)]))
    return shape


def _tiny() -> Shape:
    """Many tiny images: per-image work, not bytes, dominates."""
    shape = Shape("many tiny", "96 tags of 2 small layers, 2 platforms")
    for i in range(96):
        shape.images.append(Image(f"tiny/app-{i:02d}", "1.0", TWO, lambda arch, i=i: [
            (f"tiny-base-{arch}", 0.4), (f"tiny-{i}-{arch}", 0.1 + (i % 5) * 0.05)]))
    return shape


def _platforms() -> Shape:
    """Three platforms (arm/v7 a variant), OCI indexes next to Docker lists, single-arch."""
    shape = Shape("3 platforms + variant", "8 OCI indexes and 4 Docker lists of amd64, "
                  "arm64/v8, arm/v7; 4 single-arch images without an index")
    for i in range(12):
        kind = "oci" if i < 8 else "docker"
        shape.images.append(Image(f"multi/svc-{i:02d}", "v2", THREE, lambda arch, i=i: [
            (f"multi-base-{arch}", 3.0), (f"multi-{i}-{arch}", 4.0 + (i % 4) * 3)], kind))
    for i in range(4):
        shape.images.append(Image(f"single/tool-{i}", "1", [("arm64", None)], lambda arch, i=i: [
            (f"single-{i}", 8.0)], "single"))
    return shape


def _deep() -> Shape:
    """Deep repository names sharing layers across many repositories."""
    shape = Shape("deep names", "16 tags 5 path components deep, OCI, 2 platforms, "
                  "bases shared across repositories")
    for i in range(16):
        repo = f"org/platform/team-{i % 4}/service-{i // 4}/component-{i}"
        shape.images.append(Image(repo, "2026.11", TWO, lambda arch, i=i: [
            (f"deep-base-{arch}", 6.0), (f"deep-mid-{i % 4}-{arch}", 4.0),
            (f"deep-{i}-{arch}", 6.0 + (i % 3) * 4)], "oci"))
    return shape


SHAPES = {"seed": _seed, "large": _large, "tiny": _tiny, "platforms": _platforms,
          "deep": _deep}


def content(name: str, size: float, scale: float) -> bytes:
    """Incompressible deterministic bytes for one layer."""
    return hashlib.shake_256(name.encode()).digest(max(int(size * scale * MB), 64))


def generate(host: str, shape: Shape, scale: float) -> tuple[list[str], int]:
    """Push the set (4 images at a time); returns references and unique bytes."""
    from concurrent.futures import ThreadPoolExecutor

    seen: dict[str, int] = {}

    def push(img: Image) -> str:
        b = Builder(host)
        oci = img.kind == "oci"
        children = []
        for arch, variant in img.platforms:
            layers = [content(n, s, scale) for n, s in img.layers(arch)]
            for data in layers:
                seen[hashlib.sha256(data).hexdigest()] = len(data)
            children.append(b.image(img.repo, arch, layers, oci=oci, variant=variant,
                                    tag=img.tag if img.kind == "single" else None))
        if img.kind != "single":
            b.index(img.repo, img.tag, children, oci=oci)
        return f"{img.repo}:{img.tag}"

    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(push, shape.images))
    return refs, sum(seen.values())


# -- the floor: lists computed beforehand -------------------------------------------------

def floor_lists(src: str, refs: list[str], work: Path) -> dict[str, Path]:
    """Walk the source once (untimed) and write what the floor transfers."""
    import requests

    from runbooks.registry.manifests import ACCEPT, INDEX_TYPES, image_blobs, index_children

    s = requests.Session()
    blobs: dict[str, tuple[str, int]] = {}              # digest -> (first repo, size)
    mounts: set[tuple[str, str, str]] = set()
    children, tags = [], []
    mdir = work / "manifests"
    mdir.mkdir(exist_ok=True)

    def save(body: bytes) -> Path:
        path = mdir / hashlib.sha256(body).hexdigest()
        path.write_bytes(body)
        return path

    def need(repo: str, desc: dict) -> None:
        d = desc["digest"]
        if d not in blobs:
            blobs[d] = (repo, int(desc["size"]))
        elif blobs[d][0] != repo:
            mounts.add((repo, d, blobs[d][0]))

    for ref in refs:
        repo, tag = ref.rsplit(":", 1)
        r = s.get(f"http://{src}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        mt = r.headers["Content-Type"]
        if mt in INDEX_TYPES:
            for child in index_children(r.content):
                c = s.get(f"http://{src}/v2/{repo}/manifests/{child['digest']}",
                          headers={"Accept": ACCEPT})
                for desc in image_blobs(c.content):
                    need(repo, desc)
                children.append(f"{repo} {child['digest']} {c.headers['Content-Type']} "
                                f"{save(c.content)}")
        else:
            for desc in image_blobs(r.content):
                need(repo, desc)
        tags.append(f"{repo} {tag} {mt} {save(r.content)}")
    files = {"blobs": work / "floor-blobs.txt", "mounts": work / "floor-mounts.txt",
             "children": work / "floor-children.txt", "tags": work / "floor-tags.txt"}
    files["blobs"].write_text("".join(f"{repo} {d}\n" for d, (repo, _) in blobs.items()))
    # a mount whose blob is also uploaded to that repository is not needed
    files["mounts"].write_text("".join(f"{r} {d} {f}\n" for r, d, f in sorted(mounts)))
    files["children"].write_text("".join(f"{x}\n" for x in children))
    files["tags"].write_text("".join(f"{x}\n" for x in tags))
    return files


FLOOR_BLOB = """\
#!/bin/sh
# floor: one blob, fetched once and pushed once (POST, then a streamed monolithic PUT)
loc=$(curl -sf -o /dev/null -w '%header{location}' -X POST "http://$TARGET/v2/$1/blobs/uploads/")
case "$loc" in /*) loc="http://$TARGET$loc" ;; esac
curl -sf "http://$SOURCE/v2/$1/blobs/$2" |
  curl -sf -o /dev/null -T - -H 'Content-Type: application/octet-stream' "$loc&digest=$2"
"""
FLOOR_MOUNT = """\
#!/bin/sh
curl -sf -o /dev/null -X POST "http://$TARGET/v2/$1/blobs/uploads/?mount=$2&from=$3"
"""
FLOOR_PUT = """\
#!/bin/sh
curl -sf -o /dev/null -X PUT -H "Content-Type: $3" --data-binary "@$4" \\
  "http://$TARGET/v2/$1/manifests/$2"
"""


def floor_command(src: str, files: dict[str, Path], jobs: int, work: Path
                  ) -> Callable[[str], str]:
    """blobs, then mounts, then child manifests, then tags; each list under xargs -P."""
    scripts = {}
    for name, text in (("blob", FLOOR_BLOB), ("mount", FLOOR_MOUNT), ("put", FLOOR_PUT)):
        scripts[name] = work / f"floor-{name}.sh"
        scripts[name].write_text(text)

    def cmd(t: str) -> str:
        x = f"SOURCE={src} TARGET={t} xargs -P{jobs} -L1 sh"
        return (f"{x} {scripts['blob']} < {files['blobs']} && "
                f"{x} {scripts['mount']} < {files['mounts']} && "
                f"{x} {scripts['put']} < {files['children']} && "
                f"{x} {scripts['put']} < {files['tags']}")
    return cmd


def timed(cmd: str) -> tuple[float, str]:
    """Wall time of a shell command and "" or the last error line when it failed."""
    took, err, _ = timed_cpu(cmd)
    return took, err


def timed_cpu(cmd: str) -> tuple[float, str, float]:
    """`timed`, plus the CPU time (user + system) of the command and all it started: what the
    tool itself costs, whatever the other tenants of the machine take."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if res.returncode == 0:
        return took, "", cpu
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    return took, (lines[-1] if lines else f"exit {res.returncode}")[:160], cpu


NOOP_RUNS = 3  # no-op runs per turn (best kept): a sub-second run is mostly scheduling noise


SKOPEO = "skopeo --insecure-policy"
INV = "greenroom, as inv registry.load-images"   # timed for the no-op only (same engine)
TLS = "--src-tls-verify=false --dest-tls-verify=false"


COMPARE: list[tuple[str, str]] = []  # (label, checkout dir) from --compare-at
ONLY: list[str] = []  # --only: tool name prefixes to run (default: every tool)


def tools(src: str, refs: list[str], work: Path, arm64: bool, jobs: int
          ) -> dict[str, Callable[[str], str]]:
    """name -> function(target) returning the command line for that tool."""
    listing = work / "images.txt"
    listing.write_text("".join(f"{src}/{r}\n" for r in refs))
    pairs = work / "pairs.txt"
    pairs.write_text("".join(f"{r}\n" for r in refs))
    sync_yaml = work / "sync.yaml"
    by_repo: dict[str, list[str]] = {}
    for r in refs:
        repo, tag = r.rsplit(":", 1)
        by_repo.setdefault(repo, []).append(tag)
    sync_yaml.write_text(f"{src}:\n  tls-verify: false\n  images:\n" + "".join(
        f"    {repo}: [{', '.join(repr(t) for t in tags)}]\n" for repo, tags in by_repo.items()))
    plat = "--override-arch arm64 --override-os linux" if arm64 else "--all"
    gr_plat = "--platform linux/arm64" if arm64 else "--all-platforms"
    lock = work / ("arm64.lock" if arm64 else "all.lock")
    py = sys.executable
    out = {
        "greenroom": lambda t: (f"{py} -m runbooks.registry load-images --images {listing} "
                                f"--to {t} {gr_plat} --lock {lock} -j {jobs}"),
        # the same task as users type it: Invoke and the project's whole tasks.py first
        INV: lambda t: (f"{Path(py).parent / 'inv'} registry.load-images --images {listing} "
                        f"--to {t} {gr_plat} --lock {lock} -j {jobs}"),
        "skopeo copy, sequential": lambda t: (
            f"while read r; do {SKOPEO} copy {plat} {TLS} docker://{src}/$r docker://{t}/$r "
            f"|| exit 1; done < {pairs}"),
        "skopeo copy, xargs -P8": lambda t: (
            f"xargs -P8 -I{{}} {SKOPEO} copy {plat} {TLS} docker://{src}/{{}} "
            f"docker://{t}/{{}} < {pairs}"),
        "skopeo sync": lambda t: (f"{SKOPEO} sync {plat} {TLS} --src yaml --dest docker "
                                  f"{sync_yaml} {t}"),
    }
    for label, where in COMPARE:  # the same command, run from another checkout's code
        out[f"greenroom at {label}"] = (lambda t, where=where: (
            f"cd {shlex.quote(where)} && {out['greenroom'](t)}"))
    if not arm64 and (not ONLY or any("floor".startswith(p) for p in ONLY)):
        out[f"floor: curl, xargs -P{jobs}"] = floor_command(src, floor_lists(src, refs, work),
                                                            jobs, work)
    return {name: cmd for name, cmd in out.items()
            if not ONLY or name == "greenroom" or any(name.startswith(p) for p in ONLY)}


def run_all(src: str, refs: list[str], work: Path, arm64: bool, jobs: int, label: str,
            repeat: int = 1) -> dict[str, tuple]:
    """Every tool, cold then no-op; with `repeat`, the tools take turns and the best of each
    is kept (other tenants' load spikes only ever make a run slower)."""
    out: dict[str, tuple] = {}
    runs = 0
    commands = tools(src, refs, work, arm64, jobs)
    nan = float("nan")
    for _ in range(repeat):
        for name in commands:
            if name == INV:
                continue                           # run against greenroom's target below
            runs += 1
            tdir = work / f"target-{runs}-{int(arm64)}"
            lock = work / f"{runs}.lock"
            reg = Registry(tdir)
            found: dict[str, tuple] = {}
            try:
                def line_for(tool: str, host: str = reg.host, pin: Path = lock) -> str:
                    return commands[tool](host).replace(
                        str(work / ("arm64.lock" if arm64 else "all.lock")), str(pin))

                cold, cold_err, cold_cpu = timed_cpu(line_for(name))
                if name.startswith("floor"):       # it checks nothing: no no-op run exists
                    found[name] = (cold, nan, cold_err, "", nan, cold_cpu)
                else:
                    found[name] = (cold, *best_noop(line_for(name)), cold_cpu)
                if name == "greenroom":
                    found[INV] = (nan, *best_noop(line_for(INV)), nan)
            finally:
                reg.stop()
                shutil.rmtree(tdir, ignore_errors=True)
            for tool, (cold, noop, cold_err, noop_err, cpu, cold_cpu) in found.items():
                print(f"  {label:24s} {tool:28s} cold {cold:6.2f} s (CPU {cold_cpu:5.2f} s)  "
                      f"no-op {noop:5.2f} s (CPU {cpu:4.2f} s) {cold_err or ''} "
                      f"{noop_err or ''}", file=sys.stderr)
                best = out.get(tool)
                if best is None:
                    out[tool] = (cold, noop, cold_err, noop_err, cpu, cold_cpu)
                else:
                    out[tool] = (min(best[0], cold) if cold == cold else cold,
                                 min(best[1], noop) if noop == noop else noop,
                                 best[2] or cold_err, best[3] or noop_err,
                                 min(best[4], cpu) if cpu == cpu else cpu,
                                 min(best[5], cold_cpu) if cold_cpu == cold_cpu else cold_cpu)
    return out


def best_noop(line: str) -> tuple[float, str, str, float]:
    """(best wall time, "", error, best CPU time) of NOOP_RUNS no-op runs of `line`."""
    walls, cpus, err = [], [], ""
    for _ in range(NOOP_RUNS):
        wall, failed, cpu = timed_cpu(line)
        walls.append(wall)
        cpus.append(cpu)
        err = err or failed
    return min(walls), "", err, min(cpus)


def table(results: dict[str, tuple[Shape, int, int, dict[str, tuple]]]) -> str:
    lines = [f"{os.cpu_count()} CPUs; load average before/after: {LOAD[0]} / "
             f"{os.getloadavg()[0]:.1f}; registries' storage in {TMP[0]}; times are whole "
             f"processes, best of {REPEAT[0]} per tool (the tools take turns)", "",
             "| set | tags | unique MB | tool | cold (s) | cold: tool / greenroom | cold CPU (s) | "
             "no-op (s) | no-op: tool / greenroom | no-op CPU (s) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    errors = []
    for label, (_, count, unique, res) in results.items():
        g_cold, g_noop = res["greenroom"][:2]
        for name, (cold, noop, cold_err, noop_err, cpu, cold_cpu) in res.items():
            mark_c = " (FAILED)" if cold_err else ""
            mark_n = " (FAILED)" if noop_err else ""
            noop_cells = ("- | - | -" if noop != noop else f"{noop:.2f}{mark_n} | "
                          f"{noop / g_noop:.2f}x | {cpu:.2f}")
            cold_cells = ("- | - | -" if cold != cold else
                          f"{cold:.2f}{mark_c} | {cold / g_cold:.2f}x | {cold_cpu:.2f}")
            lines.append(f"| {label} | {count} | {unique / MB:.0f} | {name} | "
                         f"{cold_cells} | {noop_cells} |")
            errors += [f"- {label}, {name}, {kind}: `{err}`"
                       for kind, err in (("cold", cold_err), ("no-op", noop_err)) if err]
    lines += ["", "Goals (cold: >= 2x the sequential loop, >= 1.5x xargs -P8, within 1.3x of "
              "the floor; no-op: <= 0.35 s for 16 images, >= 2x skopeo sync); in brackets what "
              "the floor itself reaches against the same peer; cold and no-op CPU: the run's own "
              "CPU time (user + system, all its processes; not the registries'), what other "
              "tenants' load does not change.",
              "", "| set | vs sequential | vs xargs -P8 | vs floor | no-op (s) [CPU] | "
              "no-op vs sync |", "|---|---|---|---|---|---|"]
    for label, (_, count, _, res) in results.items():
        if all(peer in res for peer in ("skopeo copy, sequential", "skopeo copy, xargs -P8",
                                        "skopeo sync")):  # not with --only
            lines.append(goals_row(label, count, res))
    if errors:
        lines += ["", "Failures (the run was timed up to the failure):", *errors]
    return "\n".join(lines) + "\n"


def goals_row(label: str, count: int, res: dict[str, tuple]) -> str:
    """One shape against the goals: met / NOT met, and whether the floor allows it."""
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    g_cold, g_noop = res["greenroom"][:2]
    floor = next((v[0] for k, v in res.items() if k.startswith("floor")), None)
    cells = []
    for peer, goal in (("skopeo copy, sequential", 2.0), ("skopeo copy, xargs -P8", 1.5)):
        ratio = res[peer][0] / g_cold
        cell = f"{ratio:.2f}x, {mark(ratio >= goal)}"
        if floor:
            possible = res[peer][0] / floor
            cell += f" [floor {possible:.2f}x{'' if possible >= goal else ', below the goal'}]"
        cells.append(cell)
    cells.append(f"{g_cold / floor:.2f}x, {mark(g_cold <= 1.3 * floor)}" if floor else "-")
    noop_goal = "" if count != 16 else f", {mark(g_noop <= 0.35)}"
    cells.append(f"{g_noop:.2f}{noop_goal} [{res['greenroom'][4]:.2f}]")
    sync = res["skopeo sync"][1] / g_noop
    cells.append(f"{sync:.2f}x, {mark(sync >= 2.0)}")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="layer size factor")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help=f"comma list of shapes ({', '.join(SHAPES)})")
    ap.add_argument("--jobs", type=int, default=8, help="greenroom's --jobs and the floor's -P")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per tool, taking turns; the best of each is reported")
    ap.add_argument("--arm64", action="store_true",
                    help="also run the seed-like set for linux/arm64 only")
    ap.add_argument("--compare-at", action="append", default=[], metavar="LABEL=DIR",
                    help="also time greenroom from another checkout (e.g. an older commit "
                         "exported with git archive into DIR), in the same run")
    ap.add_argument("--only", default="", help="run only the tools whose names start with "
                    "one of these comma-separated prefixes (greenroom always runs)")
    ap.add_argument("--out", help="also write the Markdown table to this file")
    ap.add_argument("--json", help="also write the raw numbers as JSON to this file")
    ap.add_argument("--tmp", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the registries keep their storage (default /dev/shm: RAM, so "
                         "other tenants' disk traffic does not time the registries)")
    args = ap.parse_args()
    if not shutil.which("skopeo") or not shutil.which("docker-registry"):
        raise SystemExit("needs skopeo and docker-registry: apt-get install -y skopeo "
                         "docker-registry")
    ONLY.extend(p for p in args.only.split(",") if p)
    for item in args.compare_at:
        label, _, where = item.partition("=")
        if not (where and (Path(where) / "runbooks" / "registry").is_dir()):
            raise SystemExit(f"--compare-at {item}: want LABEL=DIR, DIR a checkout of greenroom")
        COMPARE.append((label, str(Path(where).resolve())))
    # byte-compile greenroom first, as `pip install` does: `inv` never writes .pyc files
    # (Invoke's default), so without this every `inv` run would compile the project again
    for where in [str(ROOT), *(w for _, w in COMPARE)]:
        subprocess.run([sys.executable, "-m", "compileall", "-q", f"{where}/runbooks",
                        f"{where}/tasks.py"], check=True, stdout=subprocess.DEVNULL)
    LOAD.append(f"{os.getloadavg()[0]:.1f}")
    TMP.append(args.tmp or tempfile.gettempdir())
    REPEAT.append(args.repeat)
    results: dict[str, tuple] = {}
    for key in args.shapes.split(","):
        shape = SHAPES[key]()
        with tempfile.TemporaryDirectory(prefix="greenroom-bench-", dir=args.tmp) as tmp:
            work = Path(tmp)
            src = Registry(work / "source")
            try:
                t0 = time.perf_counter()
                refs, unique = generate(src.host, shape, args.scale)
                print(f"{shape.name}: {len(refs)} tags, {unique / MB:.0f} MB unique, generated "
                      f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                results[shape.name] = (shape, len(refs), unique,
                                       run_all(src.host, refs, work, False, args.jobs,
                                               shape.name, args.repeat))
                if args.arm64 and key == "seed":
                    label = f"{shape.name}, arm64 only"
                    results[label] = (shape, len(refs), unique,
                                      run_all(src.host, refs, work, True, args.jobs, label,
                                              args.repeat))
            finally:
                src.stop()
    text = table(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v[3] for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
