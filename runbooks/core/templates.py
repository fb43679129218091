"""Render the jinja2 templates in files/<runbook>/ (StrictUndefined: a missing value fails)."""

from __future__ import annotations

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
    )


def render(name: str, **values: Any) -> str:
    """Render files/<name> (e.g. "dell_gateway/dhcpd.conf.j2") with `values`."""
    return str(_environment().get_template(name).render(**values))


def managed_from(inventory: Any) -> str:
    """Where a generated file comes from, for its header: the site and the inventory's file
    name, never its full path (running from another directory must not change the file)."""
    return f"site {inventory.site} ({inventory.path.name})"
