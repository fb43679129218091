"""bench/fleet/run.py's measurement: each tool's own CPU beside its wall time, and goals from
paired no-op rounds with their spread (no lab: synthetic samples and a local process)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "bench" / "fleet" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("fleet_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_timed_process_reports_its_own_cpu(run):
    burn = [sys.executable, "-c", "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.2: pass"]
    idle = [sys.executable, "-c", "import time; time.sleep(0.2)"]
    busy, quiet = run.timed(burn), run.timed(idle)
    assert busy["cpu"] >= 0.2 > quiet["cpu"]
    assert busy["hosts"] == quiet["hosts"] == 0.0


def test_a_failing_tool_stops_the_benchmark_with_its_output(run):
    with pytest.raises(SystemExit, match="boom"):
        run.timed([sys.executable, "-c", "import sys; sys.exit('boom')"])


def _row(run, walls, first=None, cpu=0.1):
    row = run.Row(first=run.Sample(wall=first, cpu=cpu, hosts=0.5) if first else None)
    row.noops = [run.Sample(wall=w, cpu=cpu, hosts=0.2) for w in walls]
    return row


def test_goals_come_from_paired_rounds_with_their_spread(run):
    # the load moves: each round the floor and greenroom both slow down; the medians of
    # each alone give 1.00 / 1.00 = 1.0x, the rounds say greenroom is 10 % over every time
    results = {10: {"greenroom": _row(run, [0.55, 1.1, 2.2], first=1.0),
                    "fabric floor": _row(run, [0.5, 1.0, 2.0]),
                    "tuned floor": _row(run, [0.4, 0.8, 1.6]),
                    "pyinfra": _row(run, [3.0], first=2.5)}}
    assert run.ratio_text(run.paired(results[10], "greenroom", "fabric floor")) == \
        "1.10x (1.10-1.10)"
    lines = "\n".join(run.goals(results))
    assert "| no-op <= 1.0x the untuned floor (paired) | 1.10x (1.10-1.10), **not met** |" in lines
    assert "| no-op <= 1.2x the untuned floor (paired) | 1.10x (1.10-1.10), met |" in lines
    assert "| first run >= 2x pyinfra | 2.5x, met |" in lines


def test_small_sizes_take_twice_the_no_op_runs(run):
    assert [run.noop_repeat(5, n) for n in (10, 20, 50, 100)] == [10, 10, 5, 5]


@pytest.mark.parametrize("size", [10, 20, 50, 100])
def test_greenroom_reads_an_inventory_of_the_boards_it_manages(run, size):
    import yaml

    whole = yaml.safe_load(run.INVENTORY.read_text())
    cut = yaml.safe_load(run.inventory_of(size))
    assert list(cut["hosts"]) == list(whole["hosts"])[:size]
    assert {k: v for k, v in cut.items() if k != "hosts"} == \
        {k: v for k, v in whole.items() if k != "hosts"}
