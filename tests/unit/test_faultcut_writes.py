"""The fault harness (tests/support/faultcut.py) sees every file write greenroom sends, in
either form: alone (content on stdin, checked by sha256sum, `mv -f "$tmp" path`) or staged
in a batch (content in the script, put in place by the batch): without that, a fault trial
would check no file at all and pass for nothing."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from runbooks.core.apply import Batch
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, File
from tests.support.faultcut import Injector


class FakeLab:
    def __init__(self) -> None:
        self.plan = SimpleNamespace(guest=lambda host: SimpleNamespace(netns="ns-" + host))

    def exec(self, host, command, timeout=None):  # noqa: ARG002 - the lab's signature
        return SimpleNamespace(returncode=1, stdout="")


@pytest.mark.parametrize("batched", [True, False], ids=["staged-in-a-batch", "alone"])
def test_the_harness_records_every_write_of_a_command(batched):
    paths = ["/etc/a.conf", "/etc/with space/b.conf"]
    actions = [File(path, f"content of {path}\n").plan({"file": FactResult(1, "")})[0].actions[0]
               for path in paths]
    if batched:
        command = "exec sh -s\n" + Batch([*actions, Action("true")]).script()
    else:
        command = "\n".join(a.command for a in actions)
    injector = Injector(FakeLab(), "b01")
    injector.before(SimpleNamespace(host=SimpleNamespace(name="b01")), command)
    assert [(w.path, w.wanted) for w in injector.writes] == [
        (path, hashlib.sha256(f"content of {path}\n".encode()).hexdigest()) for path in paths]
