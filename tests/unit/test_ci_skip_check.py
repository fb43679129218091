""".ci/check_skips.py: CI fails on a skipped test anywhere unless .ci/allowed-skips lists
it with a reason."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_skips", REPO / ".ci" / "check_skips.py")
assert _spec and _spec.loader
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.unit.test_bootstrap" name="test_a" time="0.1"/>
<testcase classname="tests.unit.test_bootstrap" name="test_b[x]" time="0.1">
  <skipped type="pytest.skip" message="needs dpkg">why</skipped></testcase>
<testcase classname="tests.engine.test_converge_ssh" name="test_c" time="0.1">
  <skipped type="pytest.skip" message="no sshd">why</skipped></testcase>
<testcase classname="" name="tests.lab.test_lab_hosts" time="0">
  <skipped message="collection skipped">why</skipped></testcase>
</testsuite></testsuites>"""


@pytest.fixture
def junit(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    return path


def test_every_skip_is_found_with_its_node_id_and_message(junit):
    assert check_skips.skipped_tests(junit) == [
        ("tests/unit/test_bootstrap.py::test_b[x]", "needs dpkg"),
        ("tests/engine/test_converge_ssh.py::test_c", "no sshd"),
        ("tests/lab/test_lab_hosts.py", "collection skipped"),
    ]


@pytest.mark.parametrize("allowed, left", [
    ({}, 3),
    ({"tests/unit/test_bootstrap.py::test_b": "r"}, 2),
    ({"tests/unit/test_bootstrap.py::test_b[x]": "r"}, 2),
    ({"tests/unit/test_bootstrap.py::test_b[y]": "r"}, 3),
    ({"tests/engine/": "r", "tests/lab/test_lab_hosts.py": "r"}, 1),
    ({"tests/engine": "r"}, 3),
], ids=["none-listed", "all-params", "one-param", "other-param", "folder-and-module",
        "prefix-without-slash"])
def test_only_listed_skips_pass(junit, allowed, left):
    assert len(check_skips.unexplained(check_skips.skipped_tests(junit), allowed)) == left


def test_the_run_fails_on_an_unlisted_skip_and_passes_once_listed(junit, tmp_path, capsys):
    listing = tmp_path / "allowed-skips"
    listing.write_text("# comment\ntests/unit/test_bootstrap.py::test_b | needs dpkg\n")
    assert check_skips.main([str(junit), str(listing)]) == 1
    assert "tests/engine/test_converge_ssh.py::test_c: no sshd" in capsys.readouterr().out
    listing.write_text("tests/unit/ | r\ntests/engine/ | r\ntests/lab/ | r\n")
    assert check_skips.main([str(junit), str(listing)]) == 0


def test_a_listed_skip_without_a_reason_is_refused(tmp_path):
    listing = tmp_path / "allowed-skips"
    listing.write_text("tests/unit/test_bootstrap.py::test_b\n")
    with pytest.raises(SystemExit, match=r"allowed-skips:1: expected"):
        check_skips.load_allowed(listing)


def test_the_repository_list_parses():
    check_skips.load_allowed(REPO / ".ci" / "allowed-skips")
