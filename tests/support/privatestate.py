"""A state directory of its own for a bench run, so it never writes into the user's
(~/.local/state/greenroom: the labs' state, the demo's history).

`private_state()` points XDG_STATE_HOME at a fresh temporary directory for the with-block
and every process started in it (and unsets GREENROOM_LAB_STATE, so the lab's state follows
XDG_STATE_HOME), then restores both and removes the directory. A directory that still has
something mounted under it (a lab that could not be taken down) is left, with a message
saying how to take that lab down: nothing under a mount point is ever deleted. A lab that
is up from the user's own state (its lab.json there) is refused first: the run's lab would
not see it, and both would claim the same namespaces.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VARIABLES = ("XDG_STATE_HOME", "GREENROOM_LAB_STATE")


def mounts_under(folder: Path, mounts: str = "/proc/self/mounts") -> list[str]:
    """Mount points at or below `folder` (from /proc/self/mounts, octal escapes decoded)."""
    root = str(folder).rstrip("/")
    found = []
    for line in Path(mounts).read_text().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = fields[1].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return found


@contextmanager
def private_state(prefix: str = "greenroom-bench-state-") -> Iterator[Path]:
    """XDG_STATE_HOME set to a new temporary directory (yielded) for the block; SystemExit
    with what to do when a lab is up from the user's own state."""
    from runbooks.lab.access import STATE_FILE, state_root

    up = sorted(str(path) for path in state_root().glob(f"*/{STATE_FILE}"))
    if up:
        raise SystemExit(f"a lab is up from your own state ({', '.join(up)}): take it down "
                         "first (`inv lab.down -i INVENTORY`), then run this again")
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    saved = {name: os.environ.get(name) for name in VARIABLES}
    os.environ["XDG_STATE_HOME"] = str(folder)
    os.environ.pop("GREENROOM_LAB_STATE", None)
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        left = mounts_under(folder)
        if left:
            print(f"left {folder}: {len(left)} mount(s) under it (a lab still up); take it "
                  f"down with `XDG_STATE_HOME={folder} inv lab.down -i INVENTORY`, then "
                  "remove the directory", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
