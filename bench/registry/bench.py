"""Benchmark `registry.load-images` against skopeo, on loopback, in one run.

Generates a synthetic set shaped like the seed's 16 tags (amd64+arm64 indexes, ~570 MB of
unique layers, shared base layers) in a local source `docker-registry`, then times, each
against a fresh empty target registry (cold) and again with everything present (no-op):
greenroom (`python -m runbooks.registry load-images`, whole process), a sequential
`skopeo copy --all` loop, the same loop with `xargs -P8`, and `skopeo sync`; then the same
for arm64 only. Prints a Markdown table with ratios; `--out FILE` also writes it.

Usage: python bench/registry/bench.py [--scale 1.0] [--out bench/registry/results.md]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.registry.regkit import Builder, Registry  # noqa: E402

MB = 1_000_000
LOAD: list[str] = []
# (repository, tags, per-arch unique layer sizes in MB, base layer group)
SHAPE = [
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
BASES = {"kube": 2.0, "alpine": 2.8}


def layer(name: str, size: float) -> bytes:
    """Incompressible deterministic bytes for one layer."""
    return hashlib.shake_256(name.encode()).digest(int(size * MB))


def generate(host: str, scale: float) -> tuple[list[str], int]:
    """Push the synthetic set (4 images at a time); returns references and unique bytes."""
    from concurrent.futures import ThreadPoolExecutor

    seen: dict[str, int] = {}

    def push(repo: str, tag: str, sizes: list[float], base: str | None) -> str:
        b = Builder(host)
        children = []
        for arch in ("amd64", "arm64"):
            layers = []
            if base:
                layers.append(layer(f"base-{base}-{arch}", BASES[base] * scale))
            layers += [layer(f"{repo}-{tag}-{arch}-{i}", s * scale) for i, s in enumerate(sizes)]
            for data in layers:
                seen[hashlib.sha256(data).hexdigest()] = len(data)
            children.append(b.image(repo, arch, layers))
        b.index(repo, tag, children)
        return f"{repo}:{tag}"

    jobs = [(repo, tag, sizes, base) for repo, tags, sizes, base in SHAPE for tag in tags]
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(lambda j: push(*j), jobs))
    return refs, sum(seen.values())


def timed(cmd: str) -> tuple[float, str]:
    """Wall time of a shell command and "" or the last error line when it failed."""
    start = time.perf_counter()
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - start
    if res.returncode == 0:
        return took, ""
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    return took, (lines[-1] if lines else f"exit {res.returncode}")[:160]


SKOPEO = "skopeo --insecure-policy"
TLS = "--src-tls-verify=false --dest-tls-verify=false"


def tools(src: str, refs: list[str], work: Path, arm64: bool) -> dict[str, callable]:
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
    gr_plat = "" if arm64 else "--all-platforms"
    lock = work / ("arm64.lock" if arm64 else "all.lock")
    py = sys.executable
    return {
        "greenroom": lambda t: (f"{py} -m runbooks.registry load-images --images {listing} "
                                f"--to {t} {gr_plat} --lock {lock} -j 8"),
        "skopeo copy, sequential": lambda t: (
            f"while read r; do {SKOPEO} copy {plat} {TLS} docker://{src}/$r docker://{t}/$r "
            f"|| exit 1; done < {pairs}"),
        "skopeo copy, xargs -P8": lambda t: (
            f"xargs -P8 -I{{}} {SKOPEO} copy {plat} {TLS} docker://{src}/{{}} "
            f"docker://{t}/{{}} < {pairs}"),
        "skopeo sync": lambda t: (f"{SKOPEO} sync {plat} {TLS} --src yaml --dest docker "
                                  f"{sync_yaml} {t}"),
    }


def run_all(src: str, refs: list[str], work: Path, arm64: bool) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for name, cmd in tools(src, refs, work, arm64).items():
        tdir = work / f"target-{len(out)}-{int(arm64)}"
        reg = Registry(tdir)
        try:
            cold, cold_err = timed(cmd(reg.host))
            noop, noop_err = timed(cmd(reg.host))
        finally:
            reg.stop()
            shutil.rmtree(tdir, ignore_errors=True)
        out[name] = (cold, noop, cold_err, noop_err)
        print(f"  {'arm64' if arm64 else 'all  '} {name:28s} cold {cold:6.2f} s  "
              f"no-op {noop:5.2f} s {cold_err or ''} {noop_err or ''}", file=sys.stderr)
    return out


def table(results: dict[str, dict[str, tuple]], unique: int) -> str:
    lines = [f"unique layer bytes: {unique / MB:.0f} MB (both platforms); {os.cpu_count()} "
             f"CPUs; load average before/after: {LOAD[0]} / {os.getloadavg()[0]:.1f}; "
             "times are whole processes, one run each", "",
             "| set | tool | cold (s) | no-op (s) | cold: tool / greenroom | "
             "no-op: tool / greenroom |", "|---|---|---:|---:|---:|---:|"]
    errors = []
    for setname, res in results.items():
        g_cold, g_noop = res["greenroom"][:2]
        for name, (cold, noop, cold_err, noop_err) in res.items():
            mark_c = " (FAILED)" if cold_err else ""
            mark_n = " (FAILED)" if noop_err else ""
            lines.append(f"| {setname} | {name} | {cold:.2f}{mark_c} | {noop:.2f}{mark_n} | "
                         f"{cold / g_cold:.2f}x | {noop / g_noop:.2f}x |")
            errors += [f"- {setname}, {name}, {kind}: `{err}`"
                       for kind, err in (("cold", cold_err), ("no-op", noop_err)) if err]
    if errors:
        lines += ["", "Failures (the run was timed up to the failure):", *errors]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="layer size factor (1.0 = ~570 MB)")
    ap.add_argument("--out", help="also write the Markdown table to this file")
    args = ap.parse_args()
    if not shutil.which("skopeo") or not shutil.which("docker-registry"):
        raise SystemExit("needs skopeo and docker-registry: apt-get install -y skopeo "
                         "docker-registry")
    LOAD.append(f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="greenroom-bench-") as tmp:
        work = Path(tmp)
        src = Registry(work / "source")
        try:
            t0 = time.perf_counter()
            refs, unique = generate(src.host, args.scale)
            print(f"generated {len(refs)} tags, {unique / MB:.0f} MB unique in "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
            results = {"all platforms": run_all(src.host, refs, work, False),
                       "arm64 only": run_all(src.host, refs, work, True)}
        finally:
            src.stop()
    text = table(results, unique)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
