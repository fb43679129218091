"""The node's stamps (runbooks.common.artifacts): a converged node `stat`s each release file
against its stamp and hashes it only when anything differs. Real steps, the real converger
and batch, on this machine's sh in a temporary directory (the stamps there too)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runbooks.common.artifacts import (
    STAMPED,
    Artifact,
    Stamped,
    stamp_command,
    stamp_path,
    upload_command,
)
from runbooks.core import converge
from runbooks.core.facts import FactResult
from runbooks.core.results import Status
from runbooks.core.steps import Handler, Plan

PINNED = b"k3s binary, pinned\n" * 64
DIGEST = hashlib.sha256(PINNED).hexdigest()


class LocalShell:
    """Runs each command with this machine's sh, as the node's login shell would, and keeps
    the commands (so a test can tell whether the file was hashed)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, stdin: str | bytes | None = None) -> SimpleNamespace:
        self.commands.append(command)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(["sh", "-c", command], input=data, capture_output=True,
                              check=False, timeout=30)
        out, err = done.stdout.decode(), done.stderr.decode()
        return SimpleNamespace(rc=done.returncode, stdout=out, stderr=err,
                               ok=done.returncode == 0)


class Node:
    """A file managed by an Artifact step, its stamps and a restart handler, under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "usr/local/bin/k3s"
        self.stamps = root / "var/lib/greenroom/artifacts"
        self.restarts = root / "restarts"
        self.pushed = 0

    def local(self) -> Path:
        self.pushed += 1
        cached = self.root / "cache-k3s"
        cached.write_bytes(PINNED)
        return cached

    def stamp(self) -> Path:
        return Path(stamp_path(str(self.path), str(self.stamps)))

    def converge(self, digest: str = DIGEST, check: bool = False) -> tuple[Any, list[str]]:
        """One run of the Artifact's steps: (the result, the changes it made)."""
        step = Artifact(str(self.path), self.local, digest, notify=("restart k3s",),
                        stamps=str(self.stamps))
        plan = Plan().add(*step.steps()).handler(
            Handler("restart k3s", f"echo restarted >> {self.restarts}"))
        shell = LocalShell()
        ctx = SimpleNamespace(host=SimpleNamespace(name="rp0"), session=shell, check=check,
                              options={}, log=lambda text: None)
        result = converge.Converger(ctx, plan, lambda kind, text: None).run()
        return result, [c for s in result.steps if not s.name.startswith("handler:")
                        for c in s.changes]

    def restarted(self) -> int:
        return len(self.restarts.read_text().splitlines()) if self.restarts.exists() else 0


def fact_output(node: Node, digest: str = DIGEST) -> str:
    """The Artifact's fact on the node: STAMPED in it when the stamp matched (the file was
    only `stat`ed), else the file was hashed."""
    step = Artifact(str(node.path), node.local, digest, stamps=str(node.stamps))
    return subprocess.run(["sh", "-c", step.fact()], capture_output=True, text=True,
                          check=False).stdout


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """A node with the pinned file installed and stamped (a first converge)."""
    node = Node(tmp_path)
    result, changes = node.converge()
    assert result.status is Status.CHANGED, result
    assert changes == [f"install {node.path} ({len(PINNED)} bytes, sha256 {DIGEST[:12]})"]
    assert node.path.read_bytes() == PINNED and node.restarted() == 1
    assert node.stamp().read_text().startswith(f"{DIGEST} {len(PINNED)} ")
    node.restarts.unlink()
    node.pushed = 0
    return node


def tamper_keeping_size_and_mtime(node: Node) -> None:
    """Other bytes of the same size written in place, the mtime put back (touch -r)."""
    st = node.path.stat()
    with node.path.open("r+b") as f:
        f.write(b"X")
    os.utime(node.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (node.path.stat().st_size, node.path.stat().st_mtime_ns) == (st.st_size,
                                                                        st.st_mtime_ns)


def replace_by_a_copy(node: Node) -> None:
    """The same bytes, another inode (cp + mv), the mtime put back."""
    st = node.path.stat()
    other = node.path.with_name("k3s.copy")
    other.write_bytes(PINNED)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(node.path)


def touch(node: Node) -> None:
    node.path.touch()


def stamp_missing(node: Node) -> None:
    node.stamp().unlink()


def stamp_garbled(node: Node) -> None:
    node.stamp().write_text("not a stamp\n")


def stamp_empty(node: Node) -> None:
    node.stamp().write_bytes(b"")


def stamp_of_other_content(node: Node) -> None:
    """A stamp that names another sha256 for exactly this stat (a forged or stale stamp)."""
    text = node.stamp().read_text()
    node.stamp().write_text(text.replace(DIGEST, "0" * 64))


def file_missing(node: Node) -> None:
    node.path.unlink()


def nothing(node: Node) -> None:
    pass


STAMP_ONLY = [f"stamp {{path}} (hashed: sha256 {DIGEST[:12]})"]
REPLACE = [f"replace {{path}} ({len(PINNED)} bytes, sha256 {DIGEST[:12]})"]
INSTALL = [f"install {{path}} ({len(PINNED)} bytes, sha256 {DIGEST[:12]})"]


@pytest.mark.parametrize(("change", "reads_file", "expected", "restarts"), [
    (nothing, False, [], 0),
    (tamper_keeping_size_and_mtime, True, REPLACE, 1),   # the ctime moved
    (replace_by_a_copy, True, STAMP_ONLY, 0),            # another inode, same bytes
    (touch, True, STAMP_ONLY, 0),
    (stamp_missing, True, STAMP_ONLY, 0),
    (stamp_garbled, True, STAMP_ONLY, 0),
    (stamp_empty, True, STAMP_ONLY, 0),
    (stamp_of_other_content, True, STAMP_ONLY, 0),
    (file_missing, True, INSTALL, 1),
], ids=["converged-stat-only", "tampered-size-and-mtime-restored", "replaced-same-bytes",
        "touched", "stamp-missing", "stamp-garbled", "stamp-empty", "stamp-names-other-sha256",
        "file-missing"])
def test_a_run_hashes_only_when_the_stamp_differs(node: Node, change: Callable[[Node], None],
                                                  reads_file: bool, expected: list[str],
                                                  restarts: int) -> None:
    change(node)
    assert (STAMPED not in fact_output(node)) is reads_file
    result, changes = node.converge()
    assert changes == [c.format(path=node.path) for c in expected]
    assert node.restarted() == restarts, "a stamp alone restarts nothing"
    assert node.path.read_bytes() == PINNED
    assert node.pushed == (1 if expected in (REPLACE, INSTALL) else 0)
    # the second run: nothing to change, nothing hashed
    again, changes = node.converge()
    assert again.status is Status.OK and changes == []
    assert STAMPED in fact_output(node)
    assert sorted(p.name for p in node.stamps.iterdir()) == [node.stamp().name]  # no temp


def test_a_new_pin_is_never_taken_from_the_old_stamp(node: Node) -> None:
    new = b"k3s binary, next version\n"
    digest = hashlib.sha256(new).hexdigest()
    assert STAMPED not in fact_output(node, digest)
    step = Artifact(str(node.path), node.local, digest, stamps=str(node.stamps))
    changes = step.plan({"sum": FactResult(0, fact_output(node, digest))})
    assert [c.summary.split(" (")[0] for c in changes] == [f"replace {node.path}"]


def test_check_mode_hashes_but_writes_no_stamp(node: Node) -> None:
    stamp_missing(node)
    result, changes = node.converge(check=True)
    assert changes == [c.format(path=node.path) for c in STAMP_ONLY]
    assert not node.stamp().exists() and node.restarted() == 0


@pytest.mark.parametrize(("content", "message"), [
    (b"other bytes", "is not " + DIGEST),
], ids=["wrong-content"])
def test_the_stamp_command_stamps_only_what_it_hashed_right(tmp_path: Path, content: bytes,
                                                            message: str) -> None:
    target = tmp_path / "k3s"
    target.write_bytes(content)
    stamps = tmp_path / "stamps"
    done = subprocess.run(["sh", "-c", stamp_command(str(target), DIGEST, str(stamps))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 4 and message in done.stderr
    assert not stamps.exists() or list(stamps.iterdir()) == []


def test_a_refused_upload_writes_no_stamp(tmp_path: Path) -> None:
    target, stamps = tmp_path / "k3s", tmp_path / "stamps"
    done = subprocess.run(["sh", "-c", upload_command(str(target), DIGEST, "755", str(stamps))],
                          input=b"tampered", capture_output=True, check=False)
    assert done.returncode == 4 and not target.exists() and not stamps.exists()


def test_the_stamped_step_shares_the_artifact_fact() -> None:
    step = Artifact("/usr/local/bin/k3s", Path, DIGEST)
    (stamped,) = [s for s in step.steps() if isinstance(s, Stamped)]
    assert stamped.facts() == step.facts()  # the batch runs the command once for both
    assert stamp_path("/usr/local/bin/k3s") == \
        "/var/lib/greenroom/artifacts/%2Fusr%2Flocal%2Fbin%2Fk3s"


def test_a_stamp_temp_file_a_cut_write_left_is_removed(node: Node) -> None:
    """A write cut between its temp file and the rename left the temp file: the next stamp
    write of that file removes it (another file's temp file is not touched)."""
    left = Path(f"{node.stamp()}.tmp.Ab12Cd")
    other = Path(f"{stamp_path('/other/file', str(node.stamps))}.tmp.Ef34Gh")
    left.write_text("half\n")
    other.write_text("other\n")
    stamp_missing(node)
    result, changes = node.converge()
    assert changes == [c.format(path=node.path) for c in STAMP_ONLY]
    assert not left.exists() and other.exists()
    assert sorted(p.name for p in node.stamps.iterdir()) == sorted([node.stamp().name,
                                                                   other.name])
