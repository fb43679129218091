"""pi-prep's one swap rule (runbooks/pi_prep/swap.py `swap_providers`), judged the same way by
the runbook's own VerifySwapOff and by demo.check's pi-prep probe: one row per drift (and the
look-alikes that are not one), each asserted on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.inventory import parse_inventory
from runbooks.core.steps.base import StepFailed
from runbooks.pi_prep.demo_hooks import CHECK, SWAP
from runbooks.pi_prep.swap import (
    UNITS_COMMAND,
    VerifySwapOff,
    parse_units,
    swap_facts,
    swap_providers,
)
from tests.support.swapfacts import NO_UNITS, SWAPS_HEADER, swap_rule_facts

REPO = Path(__file__).resolve().parents[2]
LAB = parse_inventory((REPO / "hosts" / "lab.yaml").read_text(), "hosts/lab.yaml")
CGROUPS = {"pi.cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t80\t1\n",
           "pi.controllers": ""}

DRIFTS = [
    # (id, the host's answers, what the rule names; None: swap is off)
    ("clean", {}, None),
    ("active-file", {"swaps": SWAPS_HEADER + "/var/swap file 102396 0 -2\n"},
     "active swap /var/swap"),
    ("active-zram", {"swaps": SWAPS_HEADER + "/dev/zram0 partition 1024 0 100\n"},
     "active swap /dev/zram0"),
    ("fstab-line", {"fstab": "/swapfile none swap sw 0 0\n"},
     "/etc/fstab line '/swapfile none swap sw 0 0'"),
    ("fstab-commented", {"fstab": "#/swapfile none swap sw 0 0\n"}, None),
    ("fstab-missing", {"fstab": None}, None),
    ("dphys-installed", {"packages": "dphys-swapfile ii \n"}, "package dphys-swapfile"),
    ("zram-tools-installed", {"packages": "zram-tools ii \n"}, "package zram-tools"),
    ("zram-generator-installed", {"packages": "systemd-zram-generator ii \n"},
     "package systemd-zram-generator"),
    ("dphys-config-files-only", {"packages": "dphys-swapfile rc \n"}, None),
    ("dphys-enabled", {"units": "dphys-swapfile enabled inactive\nzramswap none inactive\n"},
     "service dphys-swapfile (enabled)"),
    ("dphys-running", {"units": "dphys-swapfile disabled active\nzramswap none inactive\n"},
     "service dphys-swapfile (running)"),
    ("dphys-enabled-and-running",
     {"units": "dphys-swapfile enabled active\nzramswap none inactive\n"},
     "service dphys-swapfile (enabled and running)"),
    ("zramswap-enabled-runtime",
     {"units": "dphys-swapfile none inactive\nzramswap enabled-runtime inactive\n"},
     "service zramswap (enabled)"),
    ("units-masked", {"units": "dphys-swapfile masked inactive\nzramswap none inactive\n"},
     None),
]


@pytest.mark.parametrize(("answers", "named"), [pytest.param(a, n, id=i) for i, a, n in DRIFTS])
def test_one_rule_for_the_runbook_and_the_probe(answers, named):
    verify = swap_rule_facts(**answers)
    probe = {k: FactResult(0, v) for k, v in CGROUPS.items()} | swap_rule_facts(
        **answers, prefix=SWAP)
    found = swap_providers(verify)
    [check] = [c for c in CHECK.evaluate(LAB.hosts["rp1"], LAB, probe) if c.name == "swap off"]
    if named is None:
        assert found == [] and VerifySwapOff().plan(verify) == []
        assert check.ok and check.detail == "no swap, none configured"
        return
    assert [f for f in found if named in f], found
    with pytest.raises(StepFailed, match="swap is still provided by: .*" + named.split()[0]):
        VerifySwapOff().plan(verify)
    assert not check.ok and named in check.detail and check.fix


def test_both_ask_the_same_commands():
    probe = {k.removeprefix(SWAP): v for k, v in CHECK.facts(LAB.hosts["rp1"], LAB).items()
             if k.startswith(SWAP)}
    assert probe == dict(VerifySwapOff().facts()) == swap_facts()


def test_every_drift_together_is_named_once_each():
    found = swap_providers(swap_rule_facts(
        swaps=SWAPS_HEADER + "/var/swap file 102396 0 -2\n",
        fstab="/swapfile none swap sw 0 0\n", packages="dphys-swapfile ii \n",
        units="dphys-swapfile enabled active\nzramswap enabled inactive\n"))
    assert len(found) == 5, found
    assert swap_providers(swap_rule_facts(units=NO_UNITS)) == []


# systemctl show's own output (systemd 252): a unit with no unit file has an empty
# UnitFileState; properties come in systemd's order, not the order asked
SHOWN = """Id=dphys-swapfile.service
ActiveState=active
UnitFileState=enabled

Id=zramswap.service
ActiveState=inactive
UnitFileState=
"""


@pytest.mark.parametrize(("rc", "out", "units", "named"), [
    (0, SHOWN, {"dphys-swapfile": ("enabled", "active"), "zramswap": ("none", "inactive")},
     ["service dphys-swapfile (enabled and running)"]),
    (1, "", {}, []),
    (0, "Id=zramswap.service\nActiveState=activating\nUnitFileState=masked\n",
     {"zramswap": ("masked", "activating")}, ["service zramswap (running)"]),
], ids=["one-enabled-running-one-missing", "no-systemd", "one-block-by-id"])
def test_units_from_one_systemctl_show(rc, out, units, named):
    assert parse_units(out) == units
    assert swap_providers(swap_rule_facts() | {"units": FactResult(rc, out)}) == named


def test_the_units_are_read_by_one_systemctl():
    assert UNITS_COMMAND.count("systemctl") == 1
    assert all(f"{unit}.service" in UNITS_COMMAND for unit in ("dphys-swapfile", "zramswap"))
