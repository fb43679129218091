"""Benches that bring a lab up keep its state in a directory of their own, never in the
user's ~/.local/state/greenroom (tests/support/privatestate.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from runbooks.lab.access import state_root
from tests.support import privatestate
from tests.support.privatestate import mounts_under, private_state

ROOT = Path(__file__).resolve().parents[2]
MINE = ("demo", "fleet")  # their own state by design (the demo's history, the fleet's labs)


@pytest.fixture
def user_state(tmp_path, monkeypatch):
    """The user's state directory, with GREENROOM_LAB_STATE set too (the run unsets it)."""
    home = tmp_path / "home-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.setenv("GREENROOM_LAB_STATE", str(home / "greenroom" / "lab"))
    return home


def test_the_block_has_its_own_state_and_the_users_is_back_after(user_state):
    with private_state() as folder:
        assert os.environ["XDG_STATE_HOME"] == str(folder)
        assert "GREENROOM_LAB_STATE" not in os.environ
        assert state_root() == folder / "greenroom" / "lab"
        (state_root() / "lab").mkdir(parents=True)
        (state_root() / "lab" / "lab.json").write_text("{}")
    assert not folder.exists()
    assert os.environ["XDG_STATE_HOME"] == str(user_state)
    assert os.environ["GREENROOM_LAB_STATE"] == str(user_state / "greenroom" / "lab")
    assert not user_state.exists()  # nothing was written into the user's


def test_a_folder_with_a_mount_left_under_it_is_not_deleted(user_state, monkeypatch, capsys):
    monkeypatch.setattr(privatestate, "mounts_under", lambda folder: [f"{folder}/x/merged"])
    with private_state() as folder:
        (folder / "x").mkdir()
    assert folder.exists()
    assert f"XDG_STATE_HOME={folder} inv lab.down" in capsys.readouterr().err
    monkeypatch.undo()
    (folder / "x").rmdir()
    folder.rmdir()


def test_a_lab_up_from_the_users_own_state_is_refused(user_state):
    (user_state / "greenroom" / "lab" / "lab").mkdir(parents=True)
    (user_state / "greenroom" / "lab" / "lab" / "lab.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"a lab is up from your own state .*inv lab.down"):
        with private_state():
            pytest.fail("ran with a lab up")


def test_mount_points_under_a_folder_are_found(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n"
                      "overlay /tmp/s/greenroom/lab/lab/hosts/dell/merged overlay rw 0 0\n"
                      "overlay /tmp/s\\040x/m overlay rw 0 0\n"
                      "overlay /tmp/sx/m overlay rw 0 0\n")
    assert mounts_under(Path("/tmp/s"), str(mounts)) == [
        "/tmp/s/greenroom/lab/lab/hosts/dell/merged"]
    assert mounts_under(Path("/tmp/s x"), str(mounts)) == ["/tmp/s x/m"]


def lab_benches() -> list[Path]:
    """The bench scripts that bring a lab up (a task or control.up), but demo's and fleet's."""
    return [path for path in sorted(ROOT.glob("bench/*/*.py"))
            if path.parent.name not in MINE
            and re.search(r'"lab\.up"|control\.up\(', path.read_text())]


@pytest.mark.parametrize("path", lab_benches(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bench_that_brings_a_lab_up_runs_in_a_private_state(path):
    text = path.read_text()
    assert "with private_state():" in text.split('if __name__ == "__main__":')[-1], path


def test_the_benches_with_a_lab_are_found():
    assert {p.parent.name for p in lab_benches()} >= {"faults", "k3s", "lab"}
