"""Pure tests: the copy engine's scheduler runs the most important task next."""

from __future__ import annotations

import threading

from runbooks.registry.schedule import Scheduler


def test_lowest_priority_first_and_tasks_submit_tasks():
    order: list[str] = []
    sched = Scheduler(1)
    gate = threading.Event()

    def task(name: str) -> None:
        order.append(name)
        if name == "resolve":
            sched.submit((3, -10), task, "small blob")
            sched.submit((3, -500), task, "big blob")
            sched.submit((0,), task, "manifests")

    def seed() -> None:
        sched.submit((9,), gate.wait)                  # holds the only worker while we queue
        sched.submit((1, 0), task, "resolve")
        sched.submit((2,), task, "mount")
        gate.set()

    sched.run(seed)
    assert order == ["resolve", "manifests", "mount", "big blob", "small blob"]


def test_a_raising_task_is_recorded_and_the_rest_run():
    done: list[int] = []
    sched = Scheduler(3)

    def boom() -> None:
        raise RuntimeError("bug")

    sched.run(lambda: [sched.submit((1,), boom)] + [sched.submit((2,), done.append, i)
                                                    for i in range(20)])
    assert sorted(done) == list(range(20))
    assert [str(e) for e in sched.errors] == ["bug"]
