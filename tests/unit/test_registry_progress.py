"""registry progress: image lines on stdout always, a tqdm bar only when asked (a tty), and
neither tqdm nor tomlkit is imported for `inv --list`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from runbooks.registry.progress import Progress

REPO = Path(__file__).resolve().parents[2]


def result(status: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(status=status, detail="1.0 MB",
                           spec=SimpleNamespace(source=f"up/{name}:1", target=f"{name}:1"))


def test_without_a_terminal_only_the_image_lines_are_written():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(2, out=out, err=err)
    progress.add_total(2_000_000)
    progress.advance(1_000_000)
    progress.image_done(result("copied", "a"))
    progress.image_done(result("failed", "b"))
    progress.finish()
    assert out.getvalue() == ("copied  up/a:1 -> a:1: 1.0 MB\n"
                              "FAILED  up/b:1 -> b:1: 1.0 MB\n")
    assert err.getvalue() == "" and not progress.bar


def test_with_a_bar_the_lines_still_go_to_stdout_and_the_bar_to_stderr():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(1, out=out, err=err, bar=True)
    progress.add_total(3_000_000)
    progress.advance(3_000_000)
    progress.image_done(result("skipped", "a"))
    progress.finish()
    assert out.getvalue() == "present up/a:1 -> a:1: 1.0 MB\n"
    drawn = err.getvalue()
    assert "1/1 images: 100%" in drawn and "3.00M/3.00M" in drawn  # bytes in MB, images
    assert drawn.endswith("\r")  # the bar is wiped at the end (leave=False)


def test_inv_list_imports_neither_tqdm_nor_tomlkit():
    code = ("import sys; from invoke import Program; import tasks; "
            "Program(namespace=tasks.ns).run(['inv', '--list'], exit=False); "
            "print(sorted(m for m in ('tqdm', 'tomlkit', 'fabric', 'jinja2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
