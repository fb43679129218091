#!/usr/bin/env python3
"""Fail when any test was skipped (unit, engine, registry, lab alike) unless the skip is
listed, with its reason, in .ci/allowed-skips. A skipped test proves nothing.

Usage: python3 .ci/check_skips.py JUNIT_XML [ALLOWED_SKIPS]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = REPO / ".ci" / "allowed-skips"


def load_allowed(path: Path) -> dict[str, str]:
    """``node id (or a prefix of one) | reason`` per line; # comments. A line without a
    reason is an error: every allowed skip says why."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = "" if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        node, sep, reason = (part.strip() for part in line.partition("|"))
        if not sep or not node or not reason:
            raise SystemExit(f"{path}:{number}: expected `<test node id> | <why it may "
                             f"skip in CI>`, got {raw!r}")
        allowed[node] = reason
    return allowed


def node_id(classname: str, name: str, root: Path = REPO) -> str:
    """pytest's node id from a junit testcase (``tests.lab.test_x.TestY`` + ``test_z``)."""
    parts = classname.split(".") if classname else name.split(".")
    for cut in range(len(parts), 0, -1):
        module = Path(*parts[:cut]).with_suffix(".py")
        if (root / module).is_file():
            rest = parts[cut:] + ([name] if classname else [])
            return "::".join([module.as_posix(), *rest])
    return f"{classname}::{name}" if classname else name


def skipped_tests(junit: Path, root: Path = REPO) -> list[tuple[str, str]]:
    """(node id, skip message) of every skipped test in a junit XML report."""
    tree = ET.parse(junit).getroot()
    found = []
    for case in tree.iter("testcase"):
        for skip in case.findall("skipped"):
            found.append((node_id(case.get("classname") or "", case.get("name") or "", root),
                          skip.get("message") or ""))
    return found


def unexplained(skipped: list[tuple[str, str]],
                allowed: dict[str, str]) -> list[tuple[str, str]]:
    """The skips no line of ``allowed`` covers (exact id, or an id prefix ending in
    ``::`` or ``/``, or a test's id without its parameters)."""
    def covered(node: str) -> bool:
        base = node.split("[", 1)[0]
        return any(node == key or base == key
                   or (key.endswith(("::", "/")) and node.startswith(key))
                   for key in allowed)
    return [(node, message) for node, message in skipped if not covered(node)]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    junit = Path(argv[0])
    allowed = load_allowed(Path(argv[1]) if len(argv) > 1 else ALLOWED)
    if not junit.exists():
        print(f"skip check: {junit} does not exist (the tests did not run?)")
        return 1
    skipped = skipped_tests(junit)
    bad = unexplained(skipped, allowed)
    if bad:
        print(f"skip check: {len(bad)} test(s) skipped that .ci/allowed-skips does not list; "
              "in CI every test must run (fix what made it skip, or list it there with why):")
        for node, message in bad:
            print(f"  {node}: {message}")
        return 1
    print(f"skip check: {len(skipped)} skipped, all listed in .ci/allowed-skips")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
