"""demo.check over real SSH without the lab: two real sshd hosts (role client) and one whose
port answers nothing. Only demo's own read-only probes apply to a client (reachable, clock,
time sync, disk), so this shows the engine around them: parallel hosts, the one screen,
the report, the history, and an unreachable host named while the others are still read.
Clients keep their own time (no "time sync" check); their clocks are this machine's.
"""

from __future__ import annotations

import json

import pytest
from invoke import Context, Exit

from runbooks.demo.tasks import check, history
from tests.support.sshd import free_port


def test_check_reads_every_host_and_names_each_problem(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    closed = free_port("127.0.0.4")
    site.write_inventory(f"  gamma: {{address: 127.0.0.4, port: {closed}, roles: [client]}}\n")
    text = site.inventory.read_text().replace("roles: [pi]", "roles: [client]")
    site.inventory.write_text(text)
    report = tmp_path / "check.json"
    with pytest.raises(Exit) as exited:
        check(Context(), inventory=str(site.inventory), report=str(report))
    assert exited.value.code == 1
    data = json.loads(report.read_text())
    hosts = {h["host"]: h for h in data["hosts"]}
    assert set(hosts) == {"alpha", "beta", "gamma"}
    assert hosts["gamma"]["reachable"] is False
    for name in ("alpha", "beta"):
        checks = {c["name"]: c["ok"] for c in hosts[name]["checks"]}
        assert checks == {"reachable": True, "clock": True, "disk": True,
                          "leftover": True}, checks
        assert abs(hosts[name]["clock_offset"]) < 5
    out = capsys.readouterr().out
    assert "NO-GO: problems on gamma (unreachable: gamma)" in out
    assert "gamma  reachable" in out and "\033[" not in out
    history(Context(), inventory=str(site.inventory))
    assert "demo.check  NO-GO" in capsys.readouterr().out
