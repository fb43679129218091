"""Start-up of our own process: what it imports, and the garbage collector during it.

Counts, not seconds (bench/README.md, issue 15, session 9, has the CPU they save)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke import Context, Exit

from runbooks.core.cli import collector_paused

REPO = Path(__file__).resolve().parents[2]

# What a command's process loads before it connects, and the modules it must not load:
# each was loaded once for nothing (HTTP for MetalLB's download, statistics for one median).
DEMO_CHECK_LOADS = """
    import sys
    sys.argv = ["inv", "demo.check"]
    import tasks
    from runbooks.demo import check, history, order, run
    for kind in ("converge", "check", "reset", "scratch"):
        order.parts(kind)  # every runbook's parts: a lab with every role
"""
NOT_LOADED = [
    pytest.param("import sys; sys.argv = ['inv', '--list']; import tasks",
                 ["paramiko", "jinja2", "runbooks.core.session", "runbooks.demo.check",
                  "urllib.request"], id="inv-list-loads-no-ssh-templates-or-demo"),
    pytest.param(DEMO_CHECK_LOADS, ["urllib.request", "http.client"],
                 id="demo-check-plans-load-no-http-client"),
    pytest.param(DEMO_CHECK_LOADS, ["statistics", "decimal", "fractions"],
                 id="demo-check-usual-times-load-no-statistics"),
]


@pytest.mark.parametrize(("code", "absent"), NOT_LOADED)
def test_a_command_does_not_load_what_it_never_uses(code, absent):
    script = textwrap.dedent(code) + "\nimport json; print(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "runbooks.core.cli" in loaded  # the script did load greenroom
    assert sorted(set(absent) & loaded) == []


def test_usual_time_is_the_median_of_the_latest_runs():
    from runbooks.demo import history

    runs = [{"steps": {"a": a, "b": b}} for a, b in [(1.0, 4), (3.0, 2), (2.0, 9), (8.0, 1)]]
    assert history.usual_times(runs) == {"a": 2.5, "b": 3.0}
    assert history.usual_times(runs[:3]) == {"a": 2.0, "b": 4.0}
    assert history.usual_times([{"steps": {"a": 0.5}}]) == {"a": 0.5}


@pytest.fixture
def collector():
    """The collector's state as the test found it, whatever the test does."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled-before", "disabled-before"])
@pytest.mark.parametrize("fails", [False, True], ids=["block-ends", "block-raises"])
def test_collector_paused_freezes_what_the_block_made_and_resumes(collector, enabled, fails):
    gc.enable() if enabled else gc.disable()
    gc.unfreeze()
    during = []
    made = []
    with pytest.raises(RuntimeError) if fails else _nothing():
        with collector_paused():
            during.append(gc.isenabled())
            made.extend([i] for i in range(5000))  # 5000 tracked lists
            if fails:
                raise RuntimeError("boom")
    assert during == [False]
    assert gc.isenabled() is enabled
    assert gc.get_freeze_count() >= 5000


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _stub_demo(monkeypatch, seen):
    """demo's task with no inventory file, no connection and no screen: records the
    collector's state in each phase."""
    from runbooks.demo import history, run
    from runbooks.demo import tasks as demo_tasks

    inv = SimpleNamespace(site="stub", path="stub.yaml", select=lambda spec: [])
    monkeypatch.setattr(demo_tasks, "load_inventory_or_exit", lambda c, path: inv)
    monkeypatch.setattr(demo_tasks, "_connector",
                        lambda *a: SimpleNamespace(close_all=lambda: None))
    monkeypatch.setattr(history, "read_runs", lambda site: [])
    monkeypatch.setattr(run, "check_phase",
                        lambda *a: seen.append(("check", gc.isenabled())))
    monkeypatch.setattr(run, "already_green",
                        lambda *a: seen.append(("first check", gc.isenabled())))
    monkeypatch.setattr(run, "reset_phases",
                        lambda *a: seen.append(("reset", gc.isenabled())))
    monkeypatch.setattr(run, "finish", lambda *a: seen.append(("finish", gc.isenabled())))
    return demo_tasks


def test_demo_check_runs_with_the_collector_paused_and_reset_converges_with_it(
        collector, monkeypatch):
    gc.enable()
    seen: list[tuple[str, bool]] = []
    demo_tasks = _stub_demo(monkeypatch, seen)
    with pytest.raises(Exit):  # the stubbed check judges no host: not GO
        demo_tasks.check(Context(), parallel=2)
    assert seen == [("check", False), ("finish", False)]
    assert gc.isenabled()
    seen.clear()
    with pytest.raises(Exit):
        demo_tasks.reset(Context(), parallel=2)
    # the first check paused; the reset's phases (as long as they take) collected as usual
    assert seen == [("first check", False), ("reset", True), ("check", True),
                    ("finish", False)]
    assert gc.isenabled()
