"""The read-only tasks' report (dell-gateway and xen-dom0 `leases` and `check`): what is
printed with and without --json, which hosts the JSON holds, and the exit status."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from invoke import Exit

from runbooks.core.facts import FactResult
from runbooks.core.readonly import Reading, health_report, report, unreadable


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


A, B = SimpleNamespace(name="a"), SimpleNamespace(name="b")
FACTS = {"x": FactResult(0, "fine\n")}


def run(readings, judge, unreachable=unreadable, **kw):
    printed: list[str] = []
    try:
        report(readings, judge, unreachable, print_=printed.append, **kw)
    except Exit as exc:
        return printed, exc.code
    return printed, 0


def listing(host, facts):
    return Reading(True, [facts["x"].out.strip()], f"{host.name}: table")


@pytest.mark.parametrize(("json_", "unwrap", "wanted"), [
    (False, True, ["a: table", "b: table"]),
    (True, True, [json.dumps({"a": ["fine"], "b": ["fine"]}, indent=2)]),
], ids=["text", "json-two-hosts-by-name"])
def test_listing_of_two_readable_hosts(json_, unwrap, wanted):
    assert run([(A, FACTS), (B, FACTS)], listing, json_=json_, unwrap_single=unwrap) == (
        wanted, 0)


def test_one_host_json_is_its_data_alone_when_unwrapped():
    printed, code = run([(A, FACTS)], listing, json_=True, unwrap_single=True)
    assert (json.loads(printed[0]), code) == (["fine"], 0)
    printed, code = run([(A, FACTS)], listing, json_=True)
    assert (json.loads(printed[0]), code) == ({"a": ["fine"]}, 0)


@pytest.mark.parametrize("json_", [False, True], ids=["text", "json"])
def test_an_unreachable_host_is_named_left_out_of_the_json_and_exits_1(json_):
    printed, code = run([(A, "unreachable: no route"), (B, FACTS)], listing, json_=json_,
                        unwrap_single=True)
    assert printed[0] == "a: unreachable: no route"
    assert code == 1
    if json_:  # b alone is left: unwrapped
        assert json.loads(printed[1]) == ["fine"]
    else:
        assert printed[1:] == ["b: table"]


def test_notes_print_before_the_text_and_a_bad_reading_exits_1():
    def judge(host, facts):
        return Reading(False, None, f"{host.name}: table", ("a: no lease file for br1",))

    assert run([(A, FACTS)], judge) == (["a: no lease file for br1", "a: table"], 1)


def health(readings, verdicts, json_=False):
    printed: list[str] = []
    try:
        health_report(readings, lambda host, facts: verdicts[host.name],
                      lambda name, checks: f"{name}: {len(checks)} checks", json_=json_,
                      print_=printed.append)
    except Exit as exc:
        return printed, exc.code
    return printed, 0


def test_health_report_healthy_hosts_exit_0():
    verdicts = {"a": [Check("pool", True, "free")], "b": [Check("pool", True, "free")]}
    assert health([(A, FACTS), (B, FACTS)], verdicts) == (["a: 1 checks", "b: 1 checks"], 0)


def test_health_report_json_has_every_host_and_any_failed_check_exits_1():
    verdicts = {"a": [Check("pool", True, "free")], "b": [Check("pool", False, "full")]}
    c = SimpleNamespace(name="c")
    printed, code = health([(A, FACTS), (B, FACTS), (c, "unreachable: x")], verdicts,
                           json_=True)
    assert printed[0] == "c: UNHEALTHY: unreachable: x"
    assert json.loads(printed[1]) == {
        "a": {"healthy": True, "checks": [{"name": "pool", "ok": True, "detail": "free"}]},
        "b": {"healthy": False, "checks": [{"name": "pool", "ok": False, "detail": "full"}]},
        "c": {"healthy": False, "error": "unreachable: x"}}
    assert code == 1


def test_a_registered_secret_is_masked_in_text_and_json(monkeypatch):
    from runbooks.core import secrets

    monkeypatch.setattr(secrets, "_secrets", set())  # no global state left behind
    secrets.register("hunter2-bgp")

    def judge(host, facts):
        return Reading(True, ["md5 hunter2-bgp"], f"{host.name}: md5 hunter2-bgp",
                       ("note hunter2-bgp",))

    for json_ in (False, True):
        printed, code = run([(A, FACTS)], judge, json_=json_)
        assert code == 0 and printed and not any("hunter2-bgp" in line for line in printed)
