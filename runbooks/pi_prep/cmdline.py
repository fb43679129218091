"""The cgroup kernel arguments, merged into a kernel command line without disturbing it.

`merge_cmdline` keeps every other argument where it stands, adds each wanted argument once,
fixes wrong values and misspelt variants in place (`cgroup_memory=0`, `cgroups_enable=memory`),
drops duplicates and `cgroup_disable=memory`, and never touches what follows `--` (arguments
for init). `merge_cmdline_txt` applies it to the one-line cmdline.txt of a Raspberry Pi.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runbooks.core.steps.files import Edit

CGROUP_ARGS = ("cgroup_enable=cpuset", "cgroup_enable=memory", "cgroup_memory=1")
# keys whose value is a comma list of controllers, each its own setting
LIST_KEYS = frozenset({"cgroup_enable", "cgroup_disable"})
_ALIASES = {"cgroup_enabled": "cgroup_enable", "cgroup_disabled": "cgroup_disable",
            "cgroup_mem": "cgroup_memory"}


def canonical_key(key: str) -> str:
    """The key a (possibly misspelt) argument means: `Cgroups-Enable` -> `cgroup_enable`."""
    key = key.lower().replace("-", "_")
    key = re.sub(r"^cgroups_", "cgroup_", key)
    return _ALIASES.get(key, key)


def _split(token: str) -> tuple[str, str | None]:
    key, sep, value = token.partition("=")
    return key, (value if sep else None)


def merge_cmdline(tokens: Sequence[str], wanted: Sequence[str] = CGROUP_ARGS) -> list[str]:
    """`tokens` with every `wanted` argument present once; see the module docstring."""
    tokens = list(tokens)
    tail: list[str] = []
    if "--" in tokens:
        cut = tokens.index("--")
        tokens, tail = tokens[:cut], tokens[cut:]
    want_lists: dict[str, list[str]] = {}  # cgroup_enable -> [cpuset, memory]
    want_single: dict[str, str] = {}  # cgroup_memory -> "cgroup_memory=1"
    for arg in wanted:
        key, value = _split(arg)
        if key in LIST_KEYS and value is not None:
            want_lists.setdefault(key, []).append(value)
        else:
            want_single[key] = arg
    enabled = {c for values in want_lists.values() for c in values}
    seen: set[str] = set()  # wanted arguments already placed
    out: list[str] = []
    for token in tokens:
        key, value = _split(token)
        ckey = canonical_key(key)
        if ckey in want_single:
            if ckey not in seen:
                out.append(want_single[ckey])
                seen.add(ckey)
            continue
        if ckey == "cgroup_disable" and value is not None and "cgroup_disable" not in want_lists:
            rest = [c for c in value.split(",") if c.lower() not in enabled]
            if rest:
                out.append(token if len(rest) == len(value.split(",")) else
                           "cgroup_disable=" + ",".join(rest))
            continue
        if ckey in want_lists and value is not None:
            controllers = [c.lower() for c in value.split(",") if c]
            if key == ckey and value == ",".join(controllers):
                fresh = [c for c in controllers if f"{ckey}={c}" not in seen]
                if fresh == controllers:  # correctly spelt and nothing in it seen yet
                    out.append(token)
                    seen.update(f"{ckey}={c}" for c in controllers)
                    continue
            # a misspelt key or a duplicate: keep the controllers not placed yet, canonically
            for controller in controllers:
                arg = f"{ckey}={controller}"
                if arg not in seen:
                    out.append(arg)
                    seen.add(arg)
            continue
        out.append(token)
    for arg in wanted:
        key, value = _split(arg)
        mark = arg if key in want_lists else key
        if mark not in seen:
            out.append(arg)
            seen.add(mark)
    return out + tail


def merge_cmdline_txt(content: str | None, wanted: Sequence[str] = CGROUP_ARGS) -> str:
    """A cmdline.txt with the wanted arguments; ValueError for a missing, empty or
    multi-line file (the firmware reads only the first line)."""
    if content is None:
        raise ValueError("the file does not exist; the board cannot boot without it")
    lines = [line for line in content.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the file is empty: restore the board's command line "
                         "(root=..., rootwait) from its image first")
    if len(lines) > 1:
        raise ValueError(
            f"it has {len(lines)} lines but the firmware reads only the first: join the "
            "arguments into one line by hand, then run again")
    tokens = lines[0].split()
    merged = merge_cmdline(tokens, wanted)
    if merged == tokens:
        return content
    return " ".join(merged) + "\n"


def cmdline_txt_step(path: str, wanted: Sequence[str] = CGROUP_ARGS) -> Edit:
    """The step that keeps the cgroup arguments in a Raspberry Pi cmdline.txt."""
    return Edit(path, lambda current: merge_cmdline_txt(current, wanted),
                name=f"Ensure {' '.join(wanted)} in {path}", reboot=True, notify=["reboot"])
