"""The no-op fast path's command-line parser: what it takes, and everything it leaves to
Invoke (None), so the fast path can never answer a command the task would read otherwise."""

from __future__ import annotations

import pytest

from runbooks.registry.fastpath import answer, answer_inv, parse


@pytest.mark.parametrize("argv, expected", [
    pytest.param(["load-images"], {}, id="bare"),
    pytest.param(["load-images", "--images", "l.txt", "--to", "127.0.0.1:5000", "-a", "-j",
                  "4"], {"images": "l.txt", "to": "127.0.0.1:5000", "all_platforms": True,
                         "jobs": 4}, id="long-and-short"),
    pytest.param(["load-images", "--images=l.txt", "--jobs=8", "--lock=x.lock"],
                 {"images": "l.txt", "jobs": 8, "lock": "x.lock"}, id="equals-form"),
    pytest.param(["load-images", "-u", "k3s", "--runbook", "metallb", "-i", "h.yaml"],
                 {"runbook": ["k3s", "metallb"], "inventory": "h.yaml"}, id="repeatable"),
    pytest.param(["load-images", "-p", "linux/arm64,linux/amd64", "-n", "gw:5001"],
                 {"platform": "linux/arm64,linux/amd64", "insecure": ["gw:5001"]},
                 id="platform-insecure"),
])
def test_parse_takes(argv, expected):
    assert parse(argv) == expected


@pytest.mark.parametrize("argv", [
    pytest.param([], id="nothing"),
    pytest.param(["verify"], id="another-task"),
    pytest.param(["load-images", "--help"], id="help"),
    pytest.param(["-e", "load-images"], id="core-option-first"),
    pytest.param(["load-images", "--refresh"], id="refresh"),
    pytest.param(["load-images", "-r", "a=b"], id="rewrite"),
    pytest.param(["load-images", "--to"], id="value-missing"),
    pytest.param(["load-images", "--to", "--all-platforms"], id="value-is-a-flag"),
    pytest.param(["load-images", "--to="], id="empty-value"),
    pytest.param(["load-images", "--to", "a:1", "--to", "b:2"], id="given-twice"),
    pytest.param(["load-images", "-j", "0"], id="jobs-zero"),
    pytest.param(["load-images", "-j", "x"], id="jobs-not-a-number"),
    pytest.param(["load-images", "-j8"], id="glued-short-flag"),
    pytest.param(["load-images", "--all-platforms=yes"], id="switch-with-value"),
    pytest.param(["load-images", "verify"], id="two-tasks"),
])
def test_parse_leaves_to_invoke(argv):
    assert parse(argv) is None


def test_invoke_configuration_elsewhere_leaves_it_to_invoke(monkeypatch, capsys):
    monkeypatch.setenv("INVOKE_GREENROOM_INVENTORY", "hosts/other.yaml")
    assert answer(["load-images", "--to", "127.0.0.1:1"], dict) is False
    assert capsys.readouterr().out == ""


def test_an_error_leaves_it_to_invoke_with_nothing_printed(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    assert answer(["load-images", "--images", str(missing), "--to", "127.0.0.1:1"],
                  lambda: {"greenroom": {"inventory": "hosts/lab.yaml"}}) is False
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv", [
    pytest.param(["pytest", "registry.load-images"], id="not-invokes-program"),
    pytest.param(["inv"], id="no-task"),
    pytest.param(["inv", "-e", "registry.load-images"], id="core-option-first"),
    pytest.param(["inv", "registry.verify"], id="another-task"),
    pytest.param(["inv", "registry.load-images", "--help"], id="task-help"),
    pytest.param(["inv", "registry.load-images", "k3s.up"], id="two-tasks"),
    pytest.param(["/usr/bin/invoke", "load-images"], id="not-namespaced"),
])
def test_answer_inv_leaves_it_to_invoke(argv, tmp_path, capsys):
    assert answer_inv(argv, tmp_path / "invoke.yaml") is False
    assert capsys.readouterr().out == ""
