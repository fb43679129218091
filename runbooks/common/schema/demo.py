"""The `demo:` section (read by runbooks.common.demo_section): demo.check's limits and
demo.reset's workloads, images and reset steps."""

from __future__ import annotations

from typing import Any

from runbooks.common.demo_section import Section, parse_section, unknown_targets
from runbooks.core.inventory_schema import SectionContext, register_section


@register_section("demo")
def _demo(c: Any, value: Any, ctx: SectionContext) -> Section | None:
    section, problems = parse_section(value)
    problems += unknown_targets(section, ctx.hosts)
    for path, message in problems:
        c.add(("demo", *path), message)
    return None if problems else section
