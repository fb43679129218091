"""The engine's fact batch under BusyBox's sh and applets, as on an OpenWrt router.

OpenWrt routers (kind frr) have no bash and no coreutils: the one-round-trip fact script
(file stat + grep, sysctl reads, guards) must give the same results under Debian's busybox
(`busybox sh` with a PATH of busybox applets only) as under the usual /bin/sh + coreutils.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.core.facts import file_command, gather, parse_file, sysctl_command
from runbooks.core.steps import Command, LineInFile
from runbooks.router import frr

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs Debian's busybox package "
                                                       "(apt-get install busybox)")


class ShellSession:
    """Runs the batch script locally with one shell and PATH (busybox's applets or not)."""

    def __init__(self, shell: list[str], path: str) -> None:
        self.shell, self.path = shell, path

    def run(self, command: str, stdin: str | None = None) -> SimpleNamespace:
        proc = subprocess.run([*self.shell, "-c", command], input=stdin, text=True,
                              capture_output=True, env={"PATH": self.path, "LC_ALL": "C"},
                              check=False, timeout=30)
        return SimpleNamespace(stdout=proc.stdout, stderr=proc.stderr, rc=proc.returncode)


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("busybox-applets")
    assert BUSYBOX is not None
    subprocess.run([BUSYBOX, "--install", "-s", str(folder)], check=True)
    assert (folder / "stat").is_symlink() and (folder / "grep").is_symlink()
    return str(folder)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    daemons = tmp_path / "daemons"
    daemons.write_text("zebra=yes\nbgpd=no\n# a comment: with colons\n")
    odd = tmp_path / "no newline at end"
    odd.write_text("last line without newline")
    empty = tmp_path / "empty"
    empty.write_text("")
    os.chmod(daemons, 0o640)
    return {"daemons": str(daemons), "odd": str(odd), "empty": str(empty),
            "missing": str(tmp_path / "missing")}


def _facts(session: ShellSession, files: dict[str, str]) -> dict[str, object]:
    commands = {key: file_command(path) for key, path in files.items()}
    commands["forward"] = sysctl_command("net.ipv4.ip_forward")
    commands["guard"] = "[ -d /proc ] && grep -q '^bgpd=yes' " + files["daemons"]
    results = gather(session, commands)
    out: dict[str, object] = {key: parse_file(results[key]) for key in files}
    out["forward"] = (results["forward"].rc, results["forward"].out.strip())
    out["guard"] = results["guard"].rc
    return out


def test_busybox_facts_match_coreutils(applets: str, files: dict[str, str]) -> None:
    assert BUSYBOX is not None
    with_busybox = _facts(ShellSession([BUSYBOX, "sh"], applets), files)
    with_coreutils = _facts(ShellSession(["/bin/sh"], "/usr/bin:/bin"), files)
    assert with_busybox == with_coreutils
    daemons = with_busybox["daemons"]
    assert daemons.content == "zebra=yes\nbgpd=no\n# a comment: with colons\n"  # type: ignore
    assert daemons.mode == "640"  # type: ignore[attr-defined]
    assert with_busybox["odd"].content == "last line without newline"  # type: ignore
    assert with_busybox["missing"].content is None  # type: ignore[attr-defined]
    assert with_busybox["guard"] == 1


def test_router_steps_plan_the_same_under_busybox(applets: str,
                                                  files: dict[str, str]) -> None:
    assert BUSYBOX is not None
    steps = [LineInFile(files["daemons"], "bgpd=yes", match="bgpd="),
             Command("frr running", "true", unless=f"grep -q '^bgpd=yes' {files['daemons']}")]
    plans = []
    for session in (ShellSession([BUSYBOX, "sh"], applets),
                    ShellSession(["/bin/sh"], "/usr/bin:/bin")):
        planned = []
        for step in steps:
            facts = gather(session, dict(step.facts()))
            planned.append([c.summary for c in step.plan(facts)])
        plans.append(planned)
    assert plans[0] == plans[1]
    assert plans[0][0] == [f"update {files['daemons']}"]
    assert frr.daemons_with_bgpd("bgpd=no\n") == "bgpd=yes\n"


@pytest.mark.parametrize("busybox", [True, False], ids=["busybox", "coreutils"])
def test_batched_file_writes_under_busybox(applets: str, tmp_path: Path, monkeypatch,
                                           busybox: bool) -> None:
    """The converger's batch of file writes (runbooks.core.apply) with BusyBox's applets:
    its sha256sum knows no --status, its sh reads the script from stdin."""
    from runbooks.core.apply import COMMAND, Batch
    from runbooks.core.facts import prepare
    from runbooks.core.steps import Action
    from runbooks.core.steps import files as file_steps

    monkeypatch.setattr(file_steps, "BACKUP_DIR", str(tmp_path / "backups"))
    old = tmp_path / "daemons"
    old.write_text("zebra=no\n")
    wanted = {"daemons": ("zebra=yes\n", "640"), "new.conf": ("a\nb\n", "644"),
              "run.sh": ("#!/bin/sh\n", "755")}
    actions = [Action(file_steps.write_command(str(tmp_path / name), text, mode, "root",
                                               "root", None), text)
               for name, (text, mode) in wanted.items()]
    from runbooks.core.facts import dir_command

    script, parse = prepare({**{name: file_command(str(tmp_path / name)) for name in wanted},
                             "dir": dir_command(str(tmp_path)), "no dir": dir_command(
                                 str(tmp_path / "new.conf"))})
    batch = Batch(actions, script)
    shell = [BUSYBOX, "sh"] if busybox else ["sh"]
    path = applets if busybox else os.environ["PATH"]
    done = ShellSession(shell, path).run(COMMAND, batch.script())
    rcs, outputs, rest = batch.split(done.stdout)
    assert rcs == [0, 0, 0], outputs
    facts = parse(rest)
    for name, (text, mode) in wanted.items():
        assert parse_file(facts[name]).content == text and parse_file(facts[name]).mode == mode
    assert [p.name for p in (tmp_path / "backups").rglob("daemons.*")] != []
    assert facts["dir"].ok and len(facts["dir"].out.split()) == 3 and not facts["no dir"].ok
