"""The `demo:` section (read by runbooks.common.demo_section): demo.check's limits and
demo.reset's workloads, images and reset steps. Absent, nothing is stored and the reader is
not imported: `demo_section.section_of` gives the defaults then."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runbooks.core.inventory_schema import SectionContext, register_section

if TYPE_CHECKING:
    from runbooks.common.demo_section import Section


@register_section("demo")
def _demo(c: Any, value: Any, ctx: SectionContext) -> Section | None:
    if value is None:
        return None
    from runbooks.common.demo_section import parse_section, unknown_targets

    section, problems = parse_section(value)
    problems += unknown_targets(section, ctx.hosts)
    for path, message in problems:
        c.add(("demo", *path), message)
    return None if problems else section
