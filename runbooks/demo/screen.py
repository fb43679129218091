"""The one screen: a line per host, the problems with their fix, slow steps, GO / NO-GO.

Colours (green GO, red NO-GO and FAIL, yellow SLOW) only when the output is a terminal.
"""

from __future__ import annotations

from typing import IO

from runbooks.demo.history import Timing
from runbooks.demo.verdict import HostReport

GREEN, RED, YELLOW, BOLD, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"


class Paint:
    def __init__(self, out: IO[str]) -> None:
        isatty = getattr(out, "isatty", None)
        self.on = bool(isatty and isatty())

    def __call__(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.on else text


def host_table(reports: list[HostReport], usual: dict[str, float], paint: Paint) -> list[str]:
    rows = [("HOST", "REACH", "CLOCK", "DISK", "CHECKS", "TIME", "USUAL")]
    for r in reports:
        passed = sum(1 for v in r.verdicts if v.ok)
        seconds = sum(r.timings.values())
        typical = usual.get(f"check {r.host}")
        rows.append((r.host, "ok" if r.reachable else "NO",
                     f"{r.clock_offset:+.1f} s" if r.clock_offset is not None else "-",
                     r.disk_free or "-", f"{passed}/{len(r.verdicts)}", f"{seconds:.2f} s",
                     f"{typical:.2f} s" if typical is not None else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        text = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        if index and not reports[index - 1].ok:
            text = paint(text, RED)
        lines.append("  " + text)
    return lines


def problems(reports: list[HostReport], paint: Paint) -> list[str]:
    bad = [v for r in reports for v in r.verdicts if not v.ok]
    if not bad:
        return []
    width = max(len(v.host) for v in bad)
    name_width = max(len(_label(v.source, v.name)) for v in bad)
    lines = [paint(f"{len(bad)} problem(s):", RED)]
    for v in bad:
        fix = f"  -> {v.fix}" if v.fix else ""
        lines.append(f"  {v.host.ljust(width)}  {_label(v.source, v.name).ljust(name_width)}  "
                     f"{v.detail}{fix}")
    return lines


def _label(source: str, name: str) -> str:
    return name if source == "demo" else f"{source} {name}"


def slow_lines(found: list[Timing], paint: Paint) -> list[str]:
    slow = [t for t in found if t.slow]
    if not slow:
        return []
    return [paint("slower than usual: " + "; ".join(t.text() for t in slow), YELLOW)]


def verdict_line(ok: bool, paint: Paint, reports: list[HostReport]) -> str:
    if ok:
        return paint("GO: every check on every host is green", GREEN + BOLD)
    hosts = sorted({r.host for r in reports if not r.ok})
    unreachable = [r.host for r in reports if not r.reachable]
    extra = f" (unreachable: {', '.join(unreachable)})" if unreachable else ""
    return paint(f"NO-GO: problems on {', '.join(hosts)}{extra}", RED + BOLD)


def render(title: str, reports: list[HostReport], usual: dict[str, float],
           found: list[Timing], ok: bool, out: IO[str]) -> str:
    paint = Paint(out)
    lines = [title, *host_table(reports, usual, paint), *problems(reports, paint),
             *slow_lines(found, paint), verdict_line(ok, paint, reports)]
    return "\n".join(lines)
