"""DOUBLE of a MikroTik RouterOS terminal (no MikroTik can run here): the BGP tables only.

It answers `print terse` from its tables in RouterOS's own layout (index, flags, key=value),
starting from `print` output recorded as text; replays recorded output as is for the
read-only commands it is given (`/routing/bgp/session print`, `/ip route print detail where
bgp`, ...); and applies the `add`, `set [find ...]`, `set default`, `enable`, `remove [find
...]` commands `runbooks.router.routeros` sends, so a second plan after applying shows
whether the first converged. Anything else is refused, as RouterOS would ("bad command
name").
"""

from __future__ import annotations

import re
import shlex

from runbooks.common.routeros_state import parse_print
from runbooks.router.routeros import MENUS, quote


class RouterOSError(RuntimeError):
    """What RouterOS would print for a command it refuses."""


class RouterOSDouble:
    def __init__(self, kind: str, printed: dict[str, str],
                 replies: dict[str, str] | None = None) -> None:
        self.kind = kind
        # read-only commands answered with recorded text as is (sessions, routes)
        self.replies = dict(replies or {})
        self.menus = MENUS[kind]
        self.tables: dict[str, list[tuple[str, dict[str, str]]]] = {
            table: [(e.flags, dict(e.values)) for e in parse_print(printed.get(table, ""))]
            for table in self.menus
        }
        self.log: list[str] = []

    def _table(self, command: str) -> tuple[str, str]:
        for table, menu in sorted(self.menus.items(), key=lambda kv: -len(kv[1])):
            if command.startswith(menu + " "):
                return table, command[len(menu) + 1:]
        raise RouterOSError(f"bad command name: {command.split()[0]}")

    def print_terse(self, table: str, where: str = "") -> str:
        rows = []
        for index, (flags, values) in enumerate(self.tables[table]):
            if not self._matches(values, where):
                continue
            pairs = " ".join(f"{k}={quote(v)}" for k, v in values.items())
            rows.append(f"{index:2} {flags + ' ' if flags else ''}{pairs}")
        return "\n".join(rows) + ("\n" if rows else "")

    @staticmethod
    def _matches(values: dict[str, str], where: str) -> bool:
        if not where:
            return True
        key, op, pattern = re.match(r'(\S+?)(~|=)"?([^"]*)"?$', where).groups()  # type: ignore
        have = values.get(key, "")
        return bool(re.search(pattern, have)) if op == "~" else have == pattern

    def run(self, command: str) -> str:
        self.log.append(command)
        if command in self.replies:
            return self.replies[command]
        table, rest = self._table(command)
        verb, _, args = rest.partition(" ")
        rows = self.tables[table]
        if verb == "print":
            where = args.split("where", 1)[1].strip() if "where" in args else ""
            return self.print_terse(table, where)
        if verb == "add":
            rows.append(("", self._pairs(args)))
            return ""
        find = re.match(r"\[find (?:where )?(\S+?)(~|=)\"?([^\"\]]*)\"?\]\s*(.*)$", args)
        if verb == "set" and args.startswith("default "):
            for _, values in rows:
                if values.get("name") == "default":
                    values.update(self._pairs(args[len("default "):]))
                    return ""
            rows.append(("", {"name": "default", **self._pairs(args[len("default "):])}))
            return ""
        if find is None:
            raise RouterOSError(f"expected [find ...] in: {command}")
        key, op, pattern, tail = find.groups()
        hits = [i for i, (_, v) in enumerate(rows)
                if (re.search(pattern, v.get(key, "")) if op == "~" else v.get(key) == pattern)]
        if verb == "set":
            for i in hits:
                rows[i][1].update(self._pairs(tail))
        elif verb == "enable":
            for i in hits:
                rows[i] = (rows[i][0].replace("X", ""), rows[i][1])
        elif verb == "remove":
            for i in sorted(hits, reverse=True):
                del rows[i]
        else:
            raise RouterOSError(f"bad command name: {verb}")
        return ""

    @staticmethod
    def _pairs(args: str) -> dict[str, str]:
        lexer = shlex.shlex(args, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        out = {}
        for token in lexer:
            key, _, value = token.partition("=")
            out[key] = value
        return out
