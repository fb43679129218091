"""GRUB boards (Le Potato with UEFI images, x86): the cgroup arguments in GRUB_CMDLINE_LINUX.

`merge_grub_default` edits the last `GRUB_CMDLINE_LINUX=` assignment of /etc/default/grub
(shell semantics: the last one wins) with the same merge as cmdline.txt, keeping the quotes
and every other line; a value that uses shell expansion is refused rather than guessed at.
The `update-grub` handler regenerates grub.cfg, or says clearly that it could not.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runbooks.core.steps.base import Handler, StepFailed
from runbooks.core.steps.files import Edit
from runbooks.pi_prep.cmdline import CGROUP_ARGS, merge_cmdline

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

_ASSIGNMENT = re.compile(r"^(?P<indent>\s*)(?P<export>export\s+)?GRUB_CMDLINE_LINUX=(?P<value>.*)$")


def _unquote(raw: str, number: int) -> tuple[str, str]:
    """(inner value, quote char) of an assignment's right-hand side; ValueError if unsafe."""
    raw = raw.rstrip()
    if "#" in raw and not raw.startswith(("'", '"')):
        raw = raw.split("#", 1)[0].rstrip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        quote, inner = raw[0], raw[1:-1]
        if quote in inner:
            raise ValueError(f"line {number}: GRUB_CMDLINE_LINUX has nested quotes; "
                             "simplify the line by hand, then run again")
    elif raw and raw[0] in "'\"":
        raise ValueError(f"line {number}: GRUB_CMDLINE_LINUX has an unclosed quote or text "
                         "after the closing quote; fix the line by hand, then run again")
    else:
        quote, inner = '"', raw
        if " " in inner or "\t" in inner:
            raise ValueError(f"line {number}: GRUB_CMDLINE_LINUX has spaces but no quotes")
    if quote == '"' and any(ch in inner for ch in "$`\\"):
        raise ValueError(
            f"line {number}: GRUB_CMDLINE_LINUX uses shell expansion ({inner!r}); add "
            f"{' '.join(CGROUP_ARGS)} by hand or write the value out, then run again")
    return inner, quote


def merge_grub_default(content: str | None, wanted: Sequence[str] = CGROUP_ARGS) -> str:
    """/etc/default/grub with the wanted arguments in GRUB_CMDLINE_LINUX."""
    if content is None:
        raise ValueError("the file does not exist; is GRUB installed?")
    lines = content.splitlines(keepends=True)
    last = None
    for index, line in enumerate(lines):
        if _ASSIGNMENT.match(line.rstrip("\n")):
            last = index
    if last is None:
        body = content if content.endswith("\n") or not content else content + "\n"
        return body + f'GRUB_CMDLINE_LINUX="{" ".join(wanted)}"\n'
    match = _ASSIGNMENT.match(lines[last].rstrip("\n"))
    assert match is not None
    inner, quote = _unquote(match.group("value"), last + 1)
    tokens = inner.split()
    merged = merge_cmdline(tokens, wanted)
    if merged == tokens:
        return content
    ending = "\n" if lines[last].endswith("\n") else ""
    lines[last] = (f"{match.group('indent')}{match.group('export') or ''}"
                   f"GRUB_CMDLINE_LINUX={quote}{' '.join(merged)}{quote}{ending}")
    return "".join(lines)


def grub_default_step(path: str = "/etc/default/grub",
                      wanted: Sequence[str] = CGROUP_ARGS) -> Edit:
    """The step that keeps the cgroup arguments in GRUB_CMDLINE_LINUX."""
    return Edit(path, lambda current: merge_grub_default(current, wanted),
                name=f"Ensure {' '.join(wanted)} in GRUB_CMDLINE_LINUX ({path})",
                reboot=True, notify=["update-grub", "reboot"])


def _update_grub(ctx: HostContext) -> None:
    probe = ctx.run("command -v update-grub || command -v grub-mkconfig")
    tool = probe.stdout.strip().splitlines()[-1] if probe.ok and probe.stdout.strip() else ""
    if not tool:
        ctx.log("WARNING: update-grub is not installed: /etc/default/grub now has the cgroup "
                "arguments, but no grub.cfg was regenerated, so the next boot will not use "
                "them unless this board's boot loader reads /etc/default/grub some other way")
        return
    command = (tool if tool.endswith("update-grub")
               else f"{shlex.quote(tool)} -o /boot/grub/grub.cfg")
    done = ctx.run(command)
    if not done.ok:
        raise StepFailed(f"{command} failed (exit {done.rc}): "
                         f"{(done.stderr or done.stdout).strip()[-1500:]}")


UPDATE_GRUB = Handler("update-grub", _update_grub)
