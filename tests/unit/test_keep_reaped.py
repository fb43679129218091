"""Kept connections are on by default, so any test that runs a runbook may start a keeper;
tests/conftest.py stops every keeper the session started, found by the mark in its
environment, wherever its socket is (here: a temporary XDG_RUNTIME_DIR the conftest's
default socket path never sees)."""

from __future__ import annotations

import os
import time

from runbooks.core.keep_client import KeepClient, ask
from tests.conftest import TEST_RUN_MARK, keepers_of_this_run


def test_a_keeper_started_in_a_temporary_runtime_dir_is_found_by_the_runs_mark(
        tmp_path, monkeypatch):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    path = runtime / "keep-test.sock"
    mark = os.environ[TEST_RUN_MARK]
    before = {pid for pid, _ in keepers_of_this_run(mark)}
    KeepClient(60, path)._started().close()  # starts a real keeper, as a kept run would
    try:
        started = [(pid, where) for pid, where in keepers_of_this_run(mark)
                   if pid not in before]
        assert [where for _, where in started] == [str(path)]
        assert keepers_of_this_run("another-run") == []  # a keeper not ours is not found
    finally:
        ask(path, "stop")
    deadline = time.monotonic() + 10
    while any(pid == started[0][0] for pid, _ in keepers_of_this_run(mark)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(pid != started[0][0] for pid, _ in keepers_of_this_run(mark))
