"""The router runbook's plan per kind: steps, validation command, handlers, secrets."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.steps import StepFailed
from runbooks.router import plan as router_plan
from tests.unit.bgp_site import SITE, load_site


def _ctx(kind: str = "frr", text: str = SITE):  # type: ignore[no-untyped-def]
    inventory, _ = load_site(text)
    host = inventory.hosts["edge"]
    if kind != "frr":
        host = dataclasses.replace(host, vars={"kind": kind, "asn": 64512})
        inventory.hosts["edge"] = host
    return SimpleNamespace(inventory=inventory, host=host, options={}, log=print)


def test_frr_plan_validates_with_vtysh_and_reloads_only_on_change() -> None:
    plan = router_plan.plan(_ctx())  # type: ignore[arg-type]
    names = [step.name for step in plan.steps]
    assert names[0].startswith("Ensure packages installed: frr")
    conf = next(s for s in plan.steps if getattr(s, "path", "") == "/etc/frr/frr.conf")
    assert conf.validate == "vtysh -C -f {}" and conf.notify == ("reload frr",)
    assert (conf.owner, conf.group, conf.mode) == ("frr", "frr", "640")
    daemons = next(s for s in plan.steps if getattr(s, "path", "") == "/etc/frr/daemons")
    assert daemons.notify == ("restart frr",)
    assert [h.name for h in plan.handlers] == ["restart frr", "reload frr"]
    plan.check_notifications()


def test_bird_plan_validates_with_bird_p() -> None:
    plan = router_plan.plan(_ctx("bird"))  # type: ignore[arg-type]
    conf = next(s for s in plan.steps if getattr(s, "path", "") == "/etc/bird/bird.conf")
    assert conf.validate == "bird -p -c {}"


@pytest.mark.parametrize("kind", ["routeros6", "routeros7"])
def test_routeros_is_refused_with_the_print_advice(kind: str) -> None:
    with pytest.raises(StepFailed, match="--print"):
        router_plan.plan(_ctx(kind))  # type: ignore[arg-type]


def test_password_file_is_secret_and_a_missing_password_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = SITE.replace("  peers: [edge]", "  peers: [edge]\n  password: {env: GR_TEST_PW2}")
    monkeypatch.delenv("GR_TEST_PW2", raising=False)
    with pytest.raises(StepFailed, match="GR_TEST_PW2"):
        router_plan.plan(_ctx(text=text))  # type: ignore[arg-type]
    monkeypatch.setenv("GR_TEST_PW2", "s3cret-pw")
    plan = router_plan.plan(_ctx(text=text))  # type: ignore[arg-type]
    conf = next(s for s in plan.steps if getattr(s, "path", "") == "/etc/frr/frr.conf")
    assert conf.secret is True and conf.mode == "600"  # the password: root and frr only
    changes = conf.plan({"file": FactResult(1, "")})
    assert "s3cret-pw" not in changes[0].diff
