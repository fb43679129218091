"""Render the jinja2 templates in files/<runbook>/ (StrictUndefined: a missing value fails)."""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

FILES = Path(__file__).resolve().parents[2] / "files"


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(FILES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        bytecode_cache=_compiled(),
    )


def cache_dir() -> Path:
    """Where compiled templates are kept: ~/.cache/greenroom/templates ($XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenroom" / "templates"


def _compiled() -> Any:
    """Each template's compiled code kept per user, so a process renders a template without
    compiling it again (jinja2 checks the template's source against the kept code's and
    compiles a changed one; the code holds the template only, never a rendered value).
    None (compile every time) when the directory cannot be made."""
    import jinja2

    class Kept(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: Any) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                return  # a cache we cannot write is no error: compiled again next time

    directory = cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return Kept(str(directory)) if _private(directory) else None


def _private(directory: Path) -> bool:
    """Whether only this user can write `directory` (a real directory, not a link, owned by
    us, no group or other write): compiled code loaded from anywhere else could be anyone's,
    so such a cache is not used (the templates are compiled every time instead)."""
    try:
        found = os.lstat(directory)
    except OSError:
        return False
    return (stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid()
            and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def render(name: str, **values: Any) -> str:
    """Render files/<name> (e.g. "dell_gateway/dhcpd.conf.j2") with `values`."""
    return str(_environment().get_template(name).render(**values))


def managed_from(inventory: Any) -> str:
    """Where a generated file comes from, for its header: the site and the inventory's file
    name, never its full path (running from another directory must not change the file)."""
    return f"site {inventory.site} ({inventory.path.name})"
