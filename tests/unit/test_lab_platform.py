"""Without root, or not on Linux, the lab's tasks say what they need and exit non-zero."""

from __future__ import annotations

import platform

import pytest
from invoke import Program

from runbooks.lab import control
from runbooks.lab.tasks import ns


def run_lab(argv: list[str], capsys) -> tuple[int, str]:
    try:
        Program(namespace=ns, name="inv", binary="inv").run(["inv", *argv], exit=True)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("task", ["up", "down"])
def test_without_root_the_lab_says_so_and_exits_nonzero(task, monkeypatch, capsys):
    monkeypatch.setattr(control.os, "geteuid", lambda: 1000)
    started = []
    monkeypatch.setattr(control, "_up", lambda *a, **k: started.append(a))
    code, out = run_lab([task, "-i", "hosts/lab.yaml"], capsys)
    assert code != 0 and "needs root" in out and "sudo inv lab.up" in out
    assert started == []


def test_not_on_linux_the_lab_says_so(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    with pytest.raises(control.LabError, match="needs Linux"):
        control.check_platform()
