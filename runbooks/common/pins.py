"""What the cluster runbooks' fetch tasks share (k3s's release, microk8s's snap): the lock
file committed beside the inventory, the release's checksum list, and downloads checked
against it, each failure raised as the caller's own error class with what to do next.

- `read_lock(path, key, error)`: the lock's `{key: {...}}` section; {} when there is no lock
  yet; a broken file -> `error` naming the file and saying to restore it from git.
- `write_lock(path, comment, key, section)`: written atomically (a temp file renamed).
- `parse_sums(text)`: sha256sum's `<hex>  <name>` lines (`*name` in binary mode) -> {name: hex}.
- `download_verified(url, target, expected, error, ...)`: the file lands at `target` only
  when its sha256 is `expected`; else nothing is kept and `error` says what was refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbooks.common import artifacts

Error = Callable[[str], Exception]


def read_lock(path: Path, key: str, error: Error) -> dict[str, Any]:
    """The `key` section of the lock at `path` ({} when the file does not exist)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise error(f"{path}: not valid JSON ({exc}); restore it from git") from None
    section = data.get(key) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise error(f"{path}: expected {{\"{key}\": {{...}}}}; restore it from git")
    return section


def write_lock(path: Path, comment: str, key: str, section: dict[str, Any]) -> None:
    """{"comment": comment, key: section} into `path`, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"comment": comment, key: section}, indent=2) + "\n")
    tmp.replace(path)


def parse_sums(text: str) -> dict[str, str]:
    """`<sha256>  <name>` lines (sha256sum's format, `*name` for binary mode) -> {name: hex}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def download(url: str, target: Path, error: Error, hint: str = "",
             timeout: float = 60) -> None:
    """`url` into `target` atomically (runbooks.common.artifacts.download); a failure is
    raised as `error`, its message followed by `hint`."""
    try:
        artifacts.download(url, target, timeout)
    except artifacts.DownloadError as exc:
        raise error(f"{exc}{hint}") from None


def download_verified(url: str, target: Path, expected: str, error: Error, label: str,
                      listed_in: str, hint: str = "", timeout: float = 60) -> str:
    """`url` into `target` when its sha256 is `expected` (as `listed_in` states); else
    nothing is kept and `error` names `label`, both digests and `listed_in`. Returns the
    digest. The download goes to a temp file beside `target` first."""
    part = target.with_name(f".{target.name}.part")
    download(url, part, error, hint, timeout)
    got = artifacts.sha256_file(part)
    if got != expected:
        part.unlink(missing_ok=True)
        raise error(f"{label}: downloaded sha256 {got} does not match {expected} from "
                    f"{listed_in}; refusing it (nothing was kept)")
    part.replace(target)
    return got
