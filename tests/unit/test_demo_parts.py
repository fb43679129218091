"""demo.check's and demo.reset's pure parts: the demo section, clocks, leases, registry
answers, disk, history and the screen, from recorded outputs."""

from __future__ import annotations

import io
import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from runbooks.common.demo_section import Section, parse_section
from runbooks.core.facts import FactResult
from runbooks.core.inventory import parse_inventory
from runbooks.dell_gateway.leases import parse_leases
from runbooks.dell_gateway.prune import parse_neighbours, stale_leases, without_leases
from runbooks.demo import history, screen
from runbooks.demo.check import parse_df
from runbooks.demo.clock import ClockCommands, ClockStep, judge, parse_offset, parse_tracking
from runbooks.demo.verdict import HostReport, Verdict
from runbooks.pi_prep.demo_hooks import CHECK as PI_CHECK
from runbooks.pi_prep.demo_hooks import SWAP as PI_SWAP
from runbooks.registry.demo_hooks import Expected, parse_heads
from tests.support.swapfacts import swap_rule_facts

REPO = Path(__file__).resolve().parents[2]
LAB = parse_inventory((REPO / "hosts" / "lab.yaml").read_text(), "hosts/lab.yaml")
OK = FactResult(0, "")


# -- the demo section -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, problem", [
    pytest.param(None, None, id="absent"),
    pytest.param({"workloads": {"namespaces": ["podinfo"]}, "clock_tolerance": 2}, None,
                 id="namespaces"),
    pytest.param({"reset": [{"name": "x", "hosts": "pi", "run": "true",
                             "only_if": "test -e /x"}]}, None, id="guarded-step"),
    pytest.param({"reset": [{"name": "x", "hosts": "pi", "run": "true"}]},
                 "exactly one guard", id="unguarded-step"),
    pytest.param({"reset": [{"name": "x", "hosts": "pi", "run": "true", "only_if": "a",
                             "unless": "b"}]}, "exactly one guard", id="two-guards"),
    pytest.param({"workload": {}}, "unknown key", id="misspelt-key"),
    pytest.param({"clock_tolerance": -1}, "number from", id="negative-tolerance"),
    pytest.param({"workloads": {"namespaces": "podinfo"}}, "list of names", id="not-a-list"),
])
def test_section(raw, problem):
    section, problems = parse_section(raw)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in message for _path, message in problems), problems


def test_section_defaults_and_values():
    section, _ = parse_section({"workloads": {"namespaces": ["a", "b"]}, "disk_min_free": 20,
                                "reset": [{"name": "n", "hosts": "rp0", "run": "r",
                                           "unless": "u"}]})
    assert section.namespaces == ("a", "b") and section.disk_min_free == 20
    assert section.reset[0].unless == "u" and section.clock_tolerance == 5.0
    assert Section().images is None  # the registry's own list for the site


# -- clocks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("host, offset, tracking, expected", [
    pytest.param("rp0", 0.3, "C0A80A02,192.168.10.2,11,0,0,0,0,0,0,0,0,0,0,Normal",
                 {"clock": True, "time sync": True}, id="board-in-sync"),
    pytest.param("rp0", -3600.0, "C0A80A02,192.168.10.2,11,0,0,0,0,0,0,0,0,0,0,Normal",
                 {"clock": False, "time sync": True}, id="board-set-back"),
    pytest.param("rp0", 0.0, "A9FE0001,169.254.0.1,3,0,0,0,0,0,0,0,0,0,0,Normal",
                 {"clock": True, "time sync": False}, id="board-follows-elsewhere"),
    pytest.param("rp0", 0.0, "", {"clock": True, "time sync": False}, id="no-chrony"),
    pytest.param("dell", 0.1, "7F7F0101,127.127.1.1,10,0,0,0,0,0,0,0,0,0,0,Normal",
                 {"clock": True, "time sync": True}, id="gateway-local-stratum"),
    pytest.param("dell", None, "", {"clock": False, "time sync": False}, id="unreadable"),
])
def test_clock_judge(host, offset, tracking, expected):
    checks = judge(LAB.hosts[host], LAB, offset, FactResult(0 if tracking else 1, tracking), 5)
    assert {c.name: c.ok for c in checks} == expected
    assert all(c.fix for c in checks if not c.ok)


def test_clock_parsers():
    assert parse_offset(FactResult(0, "1000.5\n"), 1000.0) == 0.5
    assert parse_offset(FactResult(1, ""), 1000.0) is None
    assert parse_tracking("x,1.2.3.4,3,y,Not synchronised\n") == ("1.2.3.4", "Not synchronised")


@pytest.mark.parametrize("reading, changes", [
    pytest.param("now", 0, id="in-tolerance"),
    pytest.param("past", 1, id="set-back"),
    pytest.param("garbage", 1, id="unreadable"),
])
def test_clock_step(reading, changes):
    import time

    value = {"now": f"{time.time():.3f}", "past": f"{time.time() - 3600:.3f}",
             "garbage": "?"}[reading]
    step = ClockStep(ClockCommands("date +%s.%N", "chronyc -n -c tracking"), 5)
    planned = step.plan({"now": FactResult(0, value)})
    assert len(planned) == changes
    if changes:
        assert planned[0].actions[0].command.startswith("date -u -s @")


# -- stale leases -----------------------------------------------------------------------------

LEASES = """# The format of this file is documented in the dhcpd.leases(5) manual page.
lease 192.168.10.26 {
  starts 4 2026/11/26 10:00:00;
  ends never;
  binding state active;
  hardware ethernet 02:00:00:00:00:26;
  client-hostname "live {one}";
}
lease 192.168.10.27 {
  starts 4 2026/11/26 10:00:00;
  ends never;
  binding state active;
  hardware ethernet 02:00:00:00:00:27;
}
lease 192.168.10.28 {
  starts 4 2026/11/26 10:00:00;
  ends 4 2026/11/26 10:10:00;
  binding state free;
  hardware ethernet 02:00:00:00:00:28;
}
lease 192.168.10.27 {
  starts 4 2026/11/26 11:00:00;
  ends never;
  binding state active;
  hardware ethernet 02:00:00:00:00:27;
}
server-duid "\\000\\001";
"""


@pytest.mark.parametrize("neighbours, stale", [
    pytest.param("192.168.10.26 lladdr 02:00:00:00:00:26 REACHABLE\n"
                 "192.168.10.27 lladdr 02:00:00:00:00:27 DELAY\n", [], id="all-answer"),
    pytest.param("192.168.10.26 lladdr 02:00:00:00:00:26 REACHABLE\n"
                 "192.168.10.27 FAILED\n", ["192.168.10.27"], id="one-gone"),
    pytest.param("192.168.10.26 lladdr 02:00:00:00:00:99 REACHABLE\n",
                 ["192.168.10.26", "192.168.10.27"], id="other-mac-and-absent"),
    pytest.param("", ["192.168.10.26", "192.168.10.27"], id="none-answer"),
])
def test_stale_leases(neighbours, stale):
    active = [le for le in parse_leases(LEASES) if le.state == "active"]
    found = stale_leases(active, parse_neighbours(neighbours))
    assert [str(le.ip) for le in found] == stale


def test_pruning_keeps_every_other_byte():
    pruned = without_leases(LEASES, [IPv4Address("192.168.10.27")])
    assert "192.168.10.27" not in pruned
    assert pruned.count("lease 192.168.10.") == 2  # .26 (live) and .28 (history) kept
    assert 'client-hostname "live {one}";' in pruned and 'server-duid "\\000\\001";' in pruned
    assert without_leases(LEASES, []) == LEASES
    assert [str(le.ip) for le in parse_leases(pruned)] == ["192.168.10.26", "192.168.10.28"]


# -- registry answers -------------------------------------------------------------------------

HEADS = ("HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\r\n"
         "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:aaa\r\n\r\n"
         "HTTP/1.1 404 Not Found\r\n\r\n"
         "HTTP/1.1 200 OK\r\ndocker-content-digest: sha256:bbb\r\n\r\n")


def test_parse_heads():
    assert parse_heads(HEADS) == [(200, None), (200, "sha256:aaa"), (404, None),
                                  (200, "sha256:bbb")]


@pytest.mark.parametrize("images, ok, says", [
    pytest.param((("a", "1", "sha256:aaa"), ("b", "1", None), ("c", "1", "sha256:bbb")),
                 False, "b:1 missing", id="one-missing"),
    pytest.param((("a", "1", "sha256:xxx"),), False, "locked sha256:xxx", id="wrong-digest"),
    pytest.param((("a", "1", None),), False, "no locked digest", id="unlocked"),
])
def test_registry_images(monkeypatch, images, ok, says):
    from runbooks.registry import demo_hooks

    monkeypatch.setattr(demo_hooks, "expected", lambda *_a: Expected("192.168.10.2:5001",
                                                                      images))
    checks = demo_hooks.CHECK.evaluate(LAB.hosts["dell"], LAB,
                                       {"registry.heads": FactResult(0, HEADS)})
    assert checks[0].ok and checks[1].ok is ok and says in checks[1].detail


def test_registry_down(monkeypatch):
    from runbooks.registry import demo_hooks

    monkeypatch.setattr(demo_hooks, "expected", lambda *_a: Expected("x:1", ()))
    checks = demo_hooks.CHECK.evaluate(LAB.hosts["dell"], LAB,
                                       {"registry.heads": FactResult(7, "")})
    assert [c.ok for c in checks] == [False] and "answered nothing" in checks[0].detail


# -- boards' kernel prerequisites -------------------------------------------------------------

CGROUPS = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t80\t1\n"
SWAPS = "Filename\tType\tSize\tUsed\tPriority\n"


@pytest.mark.parametrize("cgroups, swaps, expected", [
    pytest.param(CGROUPS, SWAPS, {"memory cgroup": True, "swap off": True}, id="ready"),
    pytest.param(CGROUPS.replace("80\t1", "80\t0"), SWAPS,
                 {"memory cgroup": False, "swap off": True}, id="memory-cgroup-off"),
    pytest.param(CGROUPS, SWAPS + "/var/swap file 102396 0 -2\n",
                 {"memory cgroup": True, "swap off": False}, id="swap-active"),
])
def test_board_prerequisites(cgroups, swaps, expected):
    """The swap rule's every drift: tests/unit/test_pi_prep_swap_rule.py."""
    facts = {"pi.cgroups": FactResult(0, cgroups), "pi.controllers": FactResult(1, ""),
             **swap_rule_facts(swaps=swaps, prefix=PI_SWAP)}
    checks = PI_CHECK.evaluate(LAB.hosts["rp0"], LAB, facts)
    assert {c.name: c.ok for c in checks} == expected


# -- disk, history, screen --------------------------------------------------------------------

def test_parse_df():
    out = ("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
           "overlay 1000000 800000 200000 80% /\n")
    assert parse_df(out) == (20, 195)
    assert parse_df("") is None


def test_history_usual_and_slow(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    for seconds in (0.5, 0.6, 0.7):
        history.record("lab", history.new_run("demo.reset", True, 3.0,
                                              {"converge pi-prep": seconds}))
    usual = history.usual_times(history.read_runs("lab"))
    assert usual == {"converge pi-prep": 0.6}
    found = history.timings({"converge pi-prep": 4.1, "new step": 1.0}, usual)
    assert [t.slow for t in found] == [True, False]
    assert found[0].text() == "converge pi-prep 4.1 s, usually 0.6 s"
    assert not history.Timing("x", 0.7, 0.3).slow  # twice as slow but only 0.4 s more
    table = history.table(history.read_runs("lab"), 2)
    assert table.count("demo.reset") == 2 and "GO" in table
    assert (tmp_path / "greenroom" / "demo" / "lab.jsonl").exists()


def test_screen_names_each_problem_without_colours_off_a_terminal():
    good = HostReport("dell", True, [Verdict("dell", "demo", "clock", True, "+0.0 s")],
                      clock_offset=0.0, disk_free="80%")
    bad = HostReport("rp0", True, [Verdict("rp0", "pi-prep", "swap off", False,
                                           "dphys-swapfile running", "inv demo.reset")])
    gone = HostReport("rp1", False, [Verdict("rp1", "demo", "reachable", False, "timed out")])
    out = io.StringIO()
    text = screen.render("demo.check", [good, bad, gone], {}, [], False, out)
    assert "\033[" not in text
    assert "rp0  pi-prep swap off  dphys-swapfile running  -> inv demo.reset" in text
    assert "rp1  reachable" in text and "timed out" in text
    assert text.splitlines()[-1] == "NO-GO: problems on rp0, rp1 (unreachable: rp1)"
    assert screen.render("t", [good], {}, [], True, out).endswith(
        "GO: every check on every host is green")


# -- reset steps ------------------------------------------------------------------------------

def test_prune_step_stops_prunes_starts_only_when_stale():
    from runbooks.dell_gateway.prune import PruneStaleLeases

    step = PruneStaleLeases(LAB.hosts["dell"], LAB, LEASES)
    assert "ping" in step.facts()["neighbours"] and "eth1.100" in step.facts()["neighbours"]
    live = ("192.168.10.26 lladdr 02:00:00:00:00:26 REACHABLE\n"
            "192.168.10.27 lladdr 02:00:00:00:00:27 REACHABLE\n")
    assert step.plan({"leases": FactResult(0, LEASES), "neighbours": FactResult(0, live)}) == []
    gone = "192.168.10.26 lladdr 02:00:00:00:00:26 REACHABLE\n192.168.10.27 FAILED\n"
    [change] = step.plan({"leases": FactResult(0, LEASES),
                          "neighbours": FactResult(0, gone)})
    assert "192.168.10.27 (02:00:00:00:00:27)" in change.summary
    [action] = change.actions
    # received and checked whole before dhcpd stops; dhcpd started again however it ends
    script = action.command
    assert script.index("sha256sum -c") < script.index("systemctl stop")
    assert script.index("trap 'systemctl start isc-dhcp-server' EXIT") < script.index(
        "systemctl stop")
    assert action.stdin == without_leases(LEASES, [IPv4Address("192.168.10.27")])
    empty = PruneStaleLeases(LAB.hosts["dell"], LAB, "")
    assert empty.facts() == {}


def listed(*names):
    return FactResult(0, json.dumps({"kind": "List", "items": [
        {"kind": "Namespace", "metadata": {"name": n}} for n in names]}))


@pytest.mark.parametrize("found, deleted", [
    pytest.param(listed("default", "podinfo", "web"), ["podinfo", "web"], id="both-there"),
    pytest.param(listed("default", "web"), ["web"], id="one-there"),
    pytest.param(listed("default"), [], id="gone"),
    pytest.param(FactResult(1, "The connection to the server was refused"), [], id="api-down"),
    pytest.param(FactResult(0, "not json"), [], id="garbled"),
])
def test_workload_namespaces_are_deleted_while_listed(found, deleted):
    from runbooks.demo.workloads import workload_steps

    section, _ = parse_section({"workloads": {"namespaces": ["podinfo", "web"]},
                                "kubectl": "k3s kubectl"})
    steps = workload_steps(section, LAB)
    # one plain listing for every namespace: one kubectl, shareable with the cluster read
    assert {c for s in steps for c in s.facts().values()} == {
        "k3s kubectl get namespaces -o json"}
    changes = [c for s in steps for c in s.plan({"namespaces": found})]
    assert [c.actions[0].command for c in changes] == [
        f"k3s kubectl delete namespace {n} --ignore-not-found --timeout=120s" for n in deleted]


def test_history_record_appends_one_line_without_reading_earlier_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = history.history_path("lab")
    path.parent.mkdir(parents=True)
    earlier = '{"when": "2026-11-29T10:00:00Z",  "command": "demo.check", "ok": true}\n'
    path.write_text(earlier + '{"cut short by a crash": ')

    def parsed(_text):  # noqa: ANN001, ANN202
        raise AssertionError("record() parsed an earlier run")

    with monkeypatch.context() as patched:
        patched.setattr(history.json, "loads", parsed)
        history.record("lab", history.new_run("demo.check", True, 2.0, {"check": 1.5}))
    lines = path.read_text().splitlines(keepends=True)
    assert lines[0] == earlier  # byte for byte: not parsed, not written again
    assert lines[1] == '{"cut short by a crash": \n' and len(lines) == 3
    assert [r["command"] for r in history.read_runs("lab")] == ["demo.check"] * 2


def test_history_keeps_the_last_max_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(history, "MAX_RUNS", 3)
    for n in range(5):
        history.record("lab", history.new_run(f"run {n}", True, 1.0, {}))
    assert [r["command"] for r in history.read_runs("lab")] == ["run 2", "run 3", "run 4"]
    assert history.history_path("lab").stat().st_mode & 0o777 == 0o600
