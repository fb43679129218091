"""Timing history per site: every demo.check / demo.reset / demo.rehearse run, its steps' times.

Kept as JSON lines in the user's state directory ($XDG_STATE_HOME, else ~/.local/state):
`greenroom/demo/<site>.jsonl`, one run per line, the last MAX_RUNS kept. A step's usual time
is the median of its earlier runs; a step is flagged when it took more than SLOW_FACTOR times
its usual time and at least SLOW_MARGIN seconds more.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbooks.core import secrets

MAX_RUNS = 200
SLOW_FACTOR = 2.0
SLOW_MARGIN = 0.5
USUAL_OF = 10  # the usual time is the median of this many latest runs


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "greenroom" / "demo"


def history_path(site: str) -> Path:
    return state_dir() / f"{site}.jsonl"


def read_runs(site: str) -> list[dict[str, Any]]:
    """Every recorded run of the site, oldest first (unreadable lines are skipped)."""
    try:
        lines = history_path(site).read_text().splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if isinstance(run, dict):
            runs.append(run)
    return runs


def record(site: str, run: dict[str, Any]) -> None:
    """Append a run: one masked line added to the file (earlier runs are neither parsed nor
    written again); past MAX_RUNS the file is rewritten atomically with its last MAX_RUNS
    lines as they are."""
    path = history_path(site)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (secrets.mask(json.dumps(run, sort_keys=True)) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size and _last_byte(fd) != b"\n":
            line = b"\n" + line  # a line cut short (a crash mid-write) stays its own line
        os.write(fd, line)
    finally:
        os.close(fd)
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if len(lines) <= MAX_RUNS:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.writelines(lines[-MAX_RUNS:])
    os.replace(tmp, path)


def _last_byte(fd: int) -> bytes:
    return os.pread(fd, 1, os.fstat(fd).st_size - 1)


def usual_times(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each step's median time over its latest USUAL_OF runs."""
    seen: dict[str, list[float]] = {}
    for run in runs:
        for step, seconds in (run.get("steps") or {}).items():
            if isinstance(seconds, int | float):
                seen.setdefault(step, []).append(float(seconds))
    return {step: _median(times[-USUAL_OF:]) for step, times in seen.items()}


def _median(values: list[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count), as
    statistics.median gives, without loading statistics (and decimal, fractions, random) on
    every demo run."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Timing:
    step: str
    seconds: float
    usual: float | None

    @property
    def slow(self) -> bool:
        return (self.usual is not None and self.seconds > self.usual * SLOW_FACTOR
                and self.seconds - self.usual >= SLOW_MARGIN)

    def text(self) -> str:
        usual = f", usually {self.usual:.1f} s" if self.usual is not None else ""
        return f"{self.step} {self.seconds:.1f} s{usual}"


def timings(steps: dict[str, float], usual: dict[str, float]) -> list[Timing]:
    return [Timing(step, seconds, usual.get(step)) for step, seconds in steps.items()]


def new_run(command: str, ok: bool, seconds: float, steps: dict[str, float],
            changed: int = 0) -> dict[str, Any]:
    return {"when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command,
            "ok": ok, "seconds": round(seconds, 3), "changed": changed,
            "steps": {k: round(v, 3) for k, v in steps.items()}}


def table(runs: list[dict[str, Any]], last: int) -> str:
    """The last runs as a table: when, command, result, time, changes, slowest step."""
    rows = [("WHEN (UTC)", "COMMAND", "RESULT", "TIME", "CHANGED", "SLOWEST STEP")]
    for run in runs[-last:]:
        steps = {k: v for k, v in (run.get("steps") or {}).items()
                 if k not in (run.get("command"), "check") and isinstance(v, int | float)}
        slowest = max(steps.items(), key=lambda kv: kv[1], default=None)
        rows.append((str(run.get("when", "?")).replace("T", " ").rstrip("Z"),
                     str(run.get("command", "?")), "GO" if run.get("ok") else "NO-GO",
                     f"{float(run.get('seconds', 0)):.1f} s", str(run.get("changed", 0)),
                     f"{slowest[0]} {slowest[1]:.1f} s" if slowest else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
                     for r in rows)
