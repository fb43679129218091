"""File and directory facts on a host whose session speaks another language: coreutils'
`stat` translates its file types ("reguläre Datei", "Verzeichnis"), so the batch runs
`stat` and `grep` in the C locale; otherwise every file read as missing and was rewritten
on every run. Run through the real /bin/sh and coreutils with LANGUAGE=de."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.core.facts import dir_command, file_command, gather, parse_file

GERMAN = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LANGUAGE": "de"}


def _translated() -> bool:
    done = subprocess.run(["stat", "-c", "%F", "/"], env=GERMAN, capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() not in ("directory", "")


needs_german = pytest.mark.skipif(not _translated(), reason="coreutils' German translation "
                                  "is not installed here")


class GermanShell:
    def run(self, command: str, stdin: str | None = None) -> SimpleNamespace:
        done = subprocess.run(["sh", "-c", command], input=stdin, env=GERMAN, text=True,
                              capture_output=True, check=False, timeout=30)
        return SimpleNamespace(stdout=done.stdout, stderr=done.stderr, rc=done.returncode)


@needs_german
def test_files_and_directories_are_found_in_any_language(tmp_path: Path):
    conf = tmp_path / "k8s.conf"
    conf.write_text("overlay\nbr_netfilter\n")
    conf.chmod(0o640)
    facts = gather(GermanShell(), {"file": file_command(str(conf)),
                                   "dir": dir_command(str(tmp_path)),
                                   "missing": file_command(str(tmp_path / "nothing"))})
    state = parse_file(facts["file"])
    assert (state.content, state.mode) == ("overlay\nbr_netfilter\n", "640")
    assert facts["dir"].ok
    assert parse_file(facts["missing"]).content is None


def test_stat_and_grep_run_in_the_script_shell_not_a_subshell(tmp_path: Path):
    from runbooks.core.facts import prepare

    script, _ = prepare({"file": file_command(str(tmp_path / "a")),
                         "other": "x=1; echo $x"})
    assert "{ LC_ALL=C stat " in script and "{ LC_ALL=C grep " in script
    assert "( x=1; echo $x" in script  # a user's assignment still gets its subshell


@pytest.mark.parametrize(("output", "expected"), [
    ("a\n@@m 0\nb\n@@m 3\n", [(0, "a"), (3, "b")]),
    ("a\n@@m 1x\n@@m 0\n\n@@m 2\n", [(0, "a\n@@m 1x"), (2, "")]),
    ("\n@@m 0\n\n@@m 0\n", [(0, ""), (0, "")]),
], ids=["plain", "lookalike-status", "empty"])
def test_split_batch_cuts_at_the_marker_and_status(output, expected):
    from runbooks.core.facts import split_batch

    results = split_batch(output, ["a", "b"], "@@m")
    assert [(r.rc, r.out) for r in results.values()] == expected
