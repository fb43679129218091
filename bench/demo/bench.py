"""Benchmark: demo.check and demo.reset on the converged default lab, as whole processes,
against the manual sequence of existing tasks run one after another (the peer).

Run as root from the repository root, under the lab lock:
    flock /tmp/greenroom-lab.lock python3 bench/demo/bench.py [--runs 3] [--out FILE]

The lab is brought up and converged once (demo.reset), then each command is timed --runs
times (median). Peers:
- check peer: dell-gateway.check, registry.check, then dell-gateway, registry.up, pi-prep
  and registry.trust with --check (what an operator types to learn the same things; the
  lab's machine has no route to the VLAN, so registry.check asks the registry host over SSH
  in place of registry.verify);
- reset peer: dell-gateway, registry.up, pi-prep, registry.trust (the old rehearsal), then
  dell-gateway.check and registry.check;
- with a `cluster:` section, the check peer adds k3s.check, metallb.check and k3s, metallb,
  router with --check; the reset peer adds k3s, metallb, router, k3s.check, metallb.check
  (the lab's speaker double has no task of its own: demo.reset converges it too).
$KUBECONFIG points at a scratch file (k3s merges the lab's context into it), and
$XDG_STATE_HOME at a scratch directory (the runs' timing history and plan hints, and the
lab's state, never the user's ~/.local/state/greenroom); both are removed at the end.
Also: the floors, one SSH round trip per host (a Fabric connection and `true`) as one
process, the hosts one after another (the issue's "sum of one Fabric round trip per host")
and all at once; and demo.reset --from-scratch. The lab is taken down at the end.

`--only check` times demo.check, demo.reset and the floor (sum) alone (no peers, no
--from-scratch);
`--compare-at DIR` also times demo.check and demo.reset from another checkout DIR (e.g. one
made with `git worktree add --detach DIR <commit>`) on the same converged lab, the two taking
turns: a before/after in one run (on a converged lab both only read, so both read the same
lab).
`--bytecode` then also times demo.reset, demo.check and the floor (sum) again with this
checkout's modules compiled first (`compileall`): this machine sets PYTHONDONTWRITEBYTECODE,
so every process compiles the runbooks it imports from source, where a user's checkout
keeps its bytecode after the first run.
`--keep` also times demo.check and demo.reset with SSH connections kept between runs
(GREENROOM_SSH_KEEP=60, a keeper of the bench's own in a scratch XDG_RUNTIME_DIR): the first
kept demo.check starts the keeper and opens every connection (its row says what that costs),
then kept and cold runs take turns; the keeper is stopped at the end.
`--rounds` counts one converged demo.reset's round trips per host (bench/demo/rounds.py).
`--profile DIR` also runs demo.check and demo.reset once each under cProfile with `--report`
(DIR/check.prof, DIR/check.json, DIR/reset.prof, DIR/reset.json). The table ends with the
commit and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INV = ["-i", "hosts/lab.yaml"]
INVOKE = [str(Path(sys.executable).with_name("inv"))]

CHECK_PEER = [["dell-gateway.check"], ["registry.check"], ["dell-gateway", "--check"],
              ["registry.up", "--check"], ["pi-prep", "--check"], ["registry.trust", "--check"]]
RESET_PEER = [["dell-gateway"], ["registry.up"], ["pi-prep"], ["registry.trust"],
              ["dell-gateway.check"], ["registry.check"]]
# with a `cluster:` section (k3s): its tasks too, as an operator would type them
CLUSTER_CHECK_PEER = [["k3s.check"], ["metallb.check"], ["k3s", "--check"],
                      ["metallb", "--check"], ["router", "--check"]]
CLUSTER_RESET_PEER = [["k3s"], ["metallb"], ["router"], ["k3s.check"], ["metallb.check"]]

# The floor logs in to every host afresh (one Fabric connection each): never through kept
# connections, which are on by default since session 9 (GREENROOM_SSH_KEEP=0 here).
FLOOR = """
import os, sys, time
os.environ["GREENROOM_SSH_KEEP"] = "0"
sys.path.insert(0, {repo!r})
from concurrent.futures import ThreadPoolExecutor
from runbooks.core.inventory import load_inventory
from runbooks.core.session import Connector
from runbooks.lab.access import plug_in
plug_in()
inv = load_inventory("hosts/lab.yaml")
c = Connector(inv)
with ThreadPoolExecutor({workers}) as pool:
    list(pool.map(lambda h: c.session(h).run("true"), inv.hosts.values()))
c.close_all()
"""


def timed(args: list[str], env: dict[str, str], cwd: Path = REPO) -> float:
    start = time.monotonic()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}"
                         f"{done.stderr[-2000:]}\n")
    return seconds


def sequence(steps: list[list[str]], env: dict[str, str]) -> float:
    return sum(timed([*INVOKE, *step, *INV], env) for step in steps)


def median(fn, runs: int) -> float:  # noqa: ANN001
    return statistics.median(fn() for _ in range(runs))


def bytecode_rows(env: dict[str, str], runs: int) -> list[tuple[str, float]]:
    """demo.reset, demo.check and the floor (sum) with the checkout's modules compiled (as
    after a first run on a machine that keeps bytecode); the compiled files are removed
    after."""
    compiled = [str(REPO / "runbooks"), str(REPO / "tasks.py")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *compiled], cwd=REPO,
                   check=True, env={k: v for k, v in env.items()
                                    if k != "PYTHONDONTWRITEBYTECODE"})
    try:
        return [
            ("demo.reset, bytecode compiled", median(
                lambda: timed([*INVOKE, "demo.reset", *INV], env), runs)),
            ("demo.check, bytecode compiled", median(
                lambda: timed([*INVOKE, "demo.check", *INV], env), runs)),
            ("floor: 1 SSH round trip per host, one after another (sum), bytecode compiled",
             median(lambda: timed([sys.executable, "-c",
                                   FLOOR.format(repo=str(REPO), workers=1)], env), runs)),
        ]
    finally:
        for cache in REPO.glob("runbooks/**/__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(REPO / "__pycache__", ignore_errors=True)


def kept_rows(env: dict[str, str], runs: int, scratch: Path) -> list[tuple[str, float]]:
    """demo.check and demo.reset with connections kept from the previous run, taking turns
    with the cold ones (the load hits both alike); first a kept demo.check that starts the
    keeper (what the first run pays), then kept check/reset, cold check/reset, round by
    round. The cold runs never see the keeper (keeping off in their environment)."""
    runtime = scratch / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    kept = dict(env, GREENROOM_SSH_KEEP="60", XDG_RUNTIME_DIR=str(runtime))
    cold = dict(env, GREENROOM_SSH_KEEP="0")  # keeping is on by default: off, explicitly
    starting = timed([*INVOKE, "demo.check", *INV], kept)
    series: dict[str, list[float]] = {}
    try:
        for _ in range(runs):
            for task in ("check", "reset"):
                series.setdefault(f"demo.{task}, kept", []).append(
                    timed([*INVOKE, f"demo.{task}", *INV], kept))
                series.setdefault(f"demo.{task}, cold (taking turns with kept)", []).append(
                    timed([*INVOKE, f"demo.{task}", *INV], cold))
    finally:
        subprocess.run([*INVOKE, "ssh.close"], cwd=REPO, env=kept, capture_output=True)
    return [("demo.check, kept, first run (starts the keeper)", starting),
            *((name, statistics.median(values)) for name, values in series.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--only", choices=("all", "check"), default="all",
                        help="check: demo.check, demo.reset and the floor (sum) alone (no "
                             "peers, no --from-scratch)")
    parser.add_argument("--compare-at", default=None, metavar="DIR",
                        help="another checkout whose demo.check is timed too, taking turns")
    parser.add_argument("--rounds", action="store_true",
                        help="also count demo.reset's round trips per host once on the "
                             "converged lab (bench/demo/rounds.py) and print them")
    parser.add_argument("--bytecode", action="store_true",
                        help="also time demo.reset, demo.check and the floor with this "
                             "checkout's modules compiled first")
    parser.add_argument("--keep", action="store_true",
                        help="also time demo.check and demo.reset with SSH connections kept "
                             "between runs (taking turns with cold runs)")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="also run demo.check and demo.reset once each under cProfile, "
                             "with --report, writing DIR/{check,reset}.{prof,json}")
    args = parser.parse_args()
    env = dict(os.environ)
    # k3s merges the lab's context into $KUBECONFIG: a scratch one, never this machine's;
    # and a scratch state directory ($XDG_STATE_HOME): the runs' timing history and plan
    # hints (and the lab's own state) go there, never into the user's ~/.local/state
    scratch = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    env["KUBECONFIG"] = str(scratch / "kubeconfig")
    env["XDG_STATE_HOME"] = str(scratch / "state")
    with (REPO / INV[1]).open() as inventory:
        cluster = any(line.startswith("cluster:") for line in inventory)
    check_peer = CHECK_PEER + (CLUSTER_CHECK_PEER if cluster else [])
    reset_peer = RESET_PEER + (CLUSTER_RESET_PEER if cluster else [])
    load = os.getloadavg()
    subprocess.run([*INVOKE, "lab.up", *INV], cwd=REPO, env=env, check=True,
                   capture_output=True)
    try:
        timed([*INVOKE, "demo.reset", *INV], env)  # converge once
        counted = ""
        if args.rounds:
            counted = subprocess.run(
                [sys.executable, str(REPO / "bench" / "demo" / "rounds.py"), "--", "demo.reset",
                 *INV], cwd=REPO, env=env, capture_output=True, text=True).stdout
            counted = counted[counted.rfind("\ndemo.reset"):].strip()
        if args.profile:
            out = Path(args.profile).resolve()
            out.mkdir(parents=True, exist_ok=True)
            for name in ("check", "reset"):
                timed([sys.executable, "-m", "cProfile", "-o", str(out / f"{name}.prof"),
                       *INVOKE, f"demo.{name}", *INV, "--report", str(out / f"{name}.json")],
                      env)
        rows = []
        other = Path(args.compare_at).resolve() if args.compare_at else None

        def demo(task: str) -> list[tuple[str, float]]:
            """demo.TASK's median; with --compare-at the other checkout's too, taking turns
            (the load hits both alike; on a converged lab both only read)."""
            if other is None:
                return [(f"demo.{task}", median(
                    lambda: timed([*INVOKE, f"demo.{task}", *INV], env), args.runs))]
            other_env = dict(env, PYTHONPATH=str(other))
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed([*INVOKE, f"demo.{task}", *INV], env))
                theirs.append(timed([*INVOKE, f"demo.{task}", *INV], other_env, cwd=other))
            return [(f"demo.{task}", statistics.median(ours)),
                    (f"demo.{task} at {other.name}", statistics.median(theirs))]

        rows += demo("check")
        if args.only == "all":
            rows.append((f"check peer ({len(check_peer)} tasks)", median(
                lambda: sequence(check_peer, env), args.runs)))
        rows += demo("reset")
        if args.only == "all":
            rows += [
                (f"reset peer ({len(reset_peer)} tasks)", median(
                    lambda: sequence(reset_peer, env), args.runs)),
                ("floor: 1 SSH round trip per host, one after another (sum)", median(
                    lambda: timed([sys.executable, "-c",
                                   FLOOR.format(repo=str(REPO), workers=1)], env), args.runs)),
                ("floor: 1 SSH round trip per host, all at once", median(
                    lambda: timed([sys.executable, "-c",
                                   FLOOR.format(repo=str(REPO), workers=10)], env),
                    args.runs)),
                ("demo.reset --from-scratch", timed([*INVOKE, "demo.reset", "--from-scratch",
                                                     *INV], env)),
            ]
        else:  # the floor the goal is set against, beside the demo commands
            rows.append(("floor: 1 SSH round trip per host, one after another (sum)", median(
                lambda: timed([sys.executable, "-c",
                               FLOOR.format(repo=str(REPO), workers=1)], env), args.runs)))
        if args.keep:
            rows += kept_rows(env, args.runs, scratch)
        if args.bytecode:
            rows += bytecode_rows(env, args.runs)
    finally:
        subprocess.run([*INVOKE, "lab.down", *INV], cwd=REPO, env=env, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    base = dict(rows)
    lines = [f"| command | seconds (median of {args.runs}) | vs demo command |",
             "|---|---|---|"]
    for name, seconds in rows:
        ref = base["demo.check"] if "check" in name and "reset" not in name else base[
            "demo.reset"]
        lines.append(f"| {name} | {seconds:.2f} | {seconds / ref:.2f}x |")
    floor = base.get("floor: 1 SSH round trip per host, one after another (sum)")
    if floor:
        lines += ["", f"demo.reset / floor (sum): {base['demo.reset'] / floor:.2f}x; "
                      f"demo.check / floor (sum): {base['demo.check'] / floor:.2f}x"]
    if floor and "demo.reset, kept" in base:
        lines.append(
            f"kept: demo.reset / floor (sum): {base['demo.reset, kept'] / floor:.2f}x; "
            f"demo.check / floor (sum): {base['demo.check, kept'] / floor:.2f}x (cold, taking "
            f"turns: {base['demo.reset, cold (taking turns with kept)'] / floor:.2f}x and "
            f"{base['demo.check, cold (taking turns with kept)'] / floor:.2f}x)")
    compiled = base.get("floor: 1 SSH round trip per host, one after another (sum), "
                        "bytecode compiled")
    if compiled:
        lines.append(f"bytecode compiled: demo.reset / floor (sum): "
                     f"{base['demo.reset, bytecode compiled'] / compiled:.2f}x; demo.check / "
                     f"floor (sum): {base['demo.check, bytecode compiled'] / compiled:.2f}x")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    lines += ["", f"commit {commit or '?'}; load average (1 min) {load[0]:.1f} at the start, "
                  f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs"]
    if counted:
        lines += ["", "Round trips per host of one demo.reset on the converged lab "
                      "(bench/demo/rounds.py):", "", counted]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
