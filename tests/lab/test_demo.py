"""demo.rehearse on the virtual lab: every runbook converges, and a second rehearsal changes
nothing anywhere (the idempotence of the whole demo, on real hosts)."""

from __future__ import annotations

import json

from invoke import Context

from runbooks.demo.tasks import rehearse
from tests.lab.conftest import LAB_INVENTORY


def test_rehearsal_converges_then_changes_nothing(lab, tmp_path, capsys):
    first = tmp_path / "first.json"
    rehearse(Context(), inventory=str(LAB_INVENTORY), report=str(first))
    data = json.loads(first.read_text())
    assert data["ok"] is True
    assert [r["runbook"] for r in data["runbooks"]] == [
        "dell-gateway", "registry.up", "pi-prep", "registry.trust"]
    second = tmp_path / "second.json"
    rehearse(Context(), inventory=str(LAB_INVENTORY), report=str(second))
    again = json.loads(second.read_text())
    changed = {(r["runbook"], host): h["changed"]
               for r in again["runbooks"] for host, h in r["hosts"].items() if h["changed"]}
    assert again["ok"] is True and changed == {}
    assert "GO: every runbook converged" in capsys.readouterr().out
