"""The fault campaign: for each runbook, trials that cut its host's SSH at a random command of
a converging run on the virtual lab, each judged by tests/support/faulttrials.py.

Run it as root, under the lab lock, from the repository's root:

    flock /tmp/greenroom-lab.lock .venv/bin/python bench/faults/run.py --trials 20
    flock /tmp/greenroom-lab.lock .venv/bin/python bench/faults/run.py -s pi-prep,router
    flock /tmp/greenroom-lab.lock .venv/bin/python bench/faults/run.py -s k3s:20 --to 10
    flock /tmp/greenroom-lab.lock .venv/bin/python bench/faults/run.py -s k3s:20 --from 11
    flock /tmp/greenroom-lab.lock .venv/bin/python bench/faults/run.py -s metallb:20

For each subject it first counts the commands an uncut converging run sends the target host
(K), then runs the trials: cut at command randint(1, K) after uniform(0, 0.25) s, seeded
(--seed), so a trial is repeated by its seed, subject and number. Every trial's row goes to
bench/results/faults-<date>.jsonl; a summary table (trials, cuts that landed, runs that
ended before the cut, trials with problems) is printed at the end, for bench/README.md.
The labs keep their state in a temporary directory of the run's own (XDG_STATE_HOME,
tests/support/privatestate.py), never in the user's ~/.local/state/greenroom.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runbooks.core import access  # noqa: E402
from runbooks.core.inventory import load_inventory  # noqa: E402
from runbooks.lab import control  # noqa: E402
from runbooks.lab.access import provider  # noqa: E402
from tests.lab.conftest import LabHandle  # noqa: E402
from tests.support import faultsubjects  # noqa: E402
from tests.support.faulttrials import Outcome, Subject, count_commands, trial  # noqa: E402
from tests.support.privatestate import private_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LABS = {"lab": ROOT / "hosts" / "lab.yaml", "microk8s": ROOT / "hosts" / "lab-microk8s.yaml",
        "xen": ROOT / "hosts" / "lab-xen.yaml"}
ORDER = ("router", "pi-prep", "dell-gateway", "registry", "k3s", "metallb", "microk8s",
         "xen-dom0")


def subjects_for(lab_name: str, folder: Path) -> dict[str, Subject]:
    if lab_name == "microk8s":
        return {"microk8s": faultsubjects.microk8s(folder)}
    if lab_name == "xen":
        return {"xen-dom0": faultsubjects.xen_dom0()}
    return faultsubjects.lab_subjects(folder)


def lab_of(name: str) -> str:
    return {"microk8s": "microk8s", "xen-dom0": "xen"}.get(name, "lab")


def code_version() -> str | None:
    """The git objects of the runbooks and the fault harness, or None when either has
    changes not committed (then nothing counted earlier is reused)."""
    paths = ["runbooks", *(f"tests/support/{n}.py" for n in ("faultcut", "faulttrials",
                                                              "faultsubjects"))]
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
                           capture_output=True, text=True, check=False)
    if dirty.returncode != 0 or dirty.stdout.strip():
        return None
    trees = subprocess.run(["git", "-C", str(ROOT), "rev-parse",
                            *[f"HEAD:{p}" for p in paths]],
                           capture_output=True, text=True, check=False)
    return "-".join(trees.stdout.split()) if trees.returncode == 0 else None


def counted(lab: LabHandle, subject: Subject, folder: Path) -> int:
    """K, the commands an uncut converging run sends the target: counted once per version
    of the runbooks and the harness (a whole uncut run), kept in
    bench/results/faults-commands.json, so each slice of a split campaign draws the same cuts
    without counting again."""
    version = code_version()
    cache = folder / "faults-commands.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{subject.name}@{version}"
    if version is not None and key in known:
        return int(known[key])
    commands = count_commands(lab, subject)
    if version is not None:
        known[key] = commands
        cache.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    return commands


def campaign(names: list[str], trials: dict[str, int], seed: int, results: Path,
             replay: dict[str, list[tuple[int, float]]] | None = None, first: int = 1,
             last: int = 0) -> dict[str, list[Outcome]]:
    folder = Path(tempfile.mkdtemp(prefix="greenroom-faults-"))
    os.environ["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME") or str(
        Path.home() / ".cache")
    outcomes: dict[str, list[Outcome]] = {}
    for lab_name in dict.fromkeys(lab_of(n) for n in names):
        inventory = load_inventory(str(LABS[lab_name]))
        os.environ["KUBECONFIG"] = str(folder / "kubeconfig")
        control.up(inventory, log=lambda _msg: None)
        try:
            lab = LabHandle(inventory)
            subjects = subjects_for(lab_name, folder)
            for name in [n for n in names if lab_of(n) == lab_name]:
                subject = subjects[name]
                rng = random.Random(f"{seed}/{name}")
                if replay:
                    cuts = replay[name]
                    commands = max(at for at, _ in cuts)
                else:
                    commands = counted(lab, subject, results.parent)
                    print(f"{name}: an uncut converging run sends {subject.target} "
                          f"{commands} commands", flush=True)
                    cuts = [(rng.randint(1, commands), rng.uniform(0.0, 0.25))
                            for _ in range(trials[name])]
                outcomes[name] = []
                for number, (at, delay) in enumerate(cuts, 1):
                    if number < first or (last and number > last):
                        continue
                    outcome = trial(lab, subject, at, delay)
                    outcomes[name].append(outcome)
                    row = {"seed": seed, "trial": number, **outcome.row()}
                    with results.open("a") as out:
                        out.write(json.dumps(row) + "\n")
                    verdict = ("MISSED" if outcome.missed else outcome.status) + (
                        f"  PROBLEMS: {outcome.problems}" if outcome.problems else "")
                    print(f"  {name} #{number:02d} cut at {at}/{commands} +{delay:.2f}s "
                          f"({outcome.cut_command[:50]!r}): {verdict} "
                          f"[{outcome.seconds:.1f}s: " + ", ".join(
                              f"{k} {v:.1f}" for k, v in outcome.phases.items()) + "]",
                          flush=True)
                    if outcome.problems:
                        (results.parent / f"faults-{name}-{number}.txt").write_text(outcome.text)
        finally:
            control.down(inventory, log=lambda _msg: None)
    return outcomes


def summary(outcomes: dict[str, list[Outcome]]) -> str:
    rows = ["| runbook | trials | cut landed (unreachable/failed) | run ended first | "
            "files checked | trials with problems | s/trial |", "|---|---|---|---|---|---|---|"]
    for name, done in outcomes.items():
        landed = [o for o in done if not o.missed]
        statuses = f"{sum(o.status == 'unreachable' for o in landed)}/" \
                   f"{sum(o.status == 'failed' for o in landed)}"
        objects = sum(o.objects_checked for o in done)
        checked = f"{sum(o.files_checked for o in done)}" + (
            f" (+ {objects} objects)" if objects else "")
        rows.append(f"| {name} | {len(done)} | {len(landed)} ({statuses}) | "
                    f"{len(done) - len(landed)} | {checked} | "
                    f"{sum(bool(o.problems) for o in done)} | "
                    f"{sum(o.seconds for o in done) / max(1, len(done)):.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--subjects", default=",".join(ORDER),
                        help=f"comma-separated runbooks, each with :N trials if not -n "
                             f"(default: {','.join(ORDER)})")
    parser.add_argument("-n", "--trials", type=int, default=20, help="trials per runbook")
    parser.add_argument("--seed", type=int, default=18, help="the campaign's random seed")
    parser.add_argument("--cut", action="append", default=[],
                        help="replay one cut instead of random ones: RUNBOOK:AT:DELAY "
                             "(e.g. router:9:0.05; repeat the option for several)")
    parser.add_argument("--from", dest="first", type=int, default=1,
                        help="start at this trial number (the cuts before it are drawn but "
                             "not run): splits one seeded campaign over several lab holds, "
                             "e.g. -s k3s:20 --from 11")
    parser.add_argument("--to", dest="last", type=int, default=0,
                        help="stop after this trial number (0: run to the end), e.g. "
                             "-s k3s:20 --to 10, then -s k3s:20 --from 11")
    args = parser.parse_args()
    replay: dict[str, list[tuple[int, float]]] = {}
    for spec in args.cut:
        name, at, delay = spec.split(":")
        replay.setdefault(name, []).append((int(at), float(delay)))
    counts = {n.split(":")[0]: int(n.split(":")[1]) if ":" in n else args.trials
              for n in args.subjects.split(",") if n}
    names = list(replay) or list(counts)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        parser.error(f"unknown runbook(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    if os.geteuid() != 0:
        print("the fault campaign needs root (the virtual lab); run it as root", file=sys.stderr)
        return 1
    results = ROOT / "bench" / "results" / f"faults-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    access.plug_in(provider)
    started = time.monotonic()
    outcomes = campaign(names, counts, args.seed, results, replay, args.first, args.last)
    print(f"\n{summary(outcomes)}\n\n{time.monotonic() - started:.0f} s; rows in {results}")
    return 1 if any(o.problems for done in outcomes.values() for o in done) else 0


if __name__ == "__main__":
    with private_state():  # the labs' state in a directory of the run's own, not the user's
        code = main()
    sys.exit(code)
