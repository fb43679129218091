"""A small TOML writer for the data `tomllib` reads (Python 3.11 reads TOML but cannot write it).

Enough for containerd's config: tables, arrays of tables, strings, integers, floats,
booleans, dates and arrays. `tomllib.loads(dumps(data)) == data` for such data; comments and
layout of the original are not kept, so callers rewrite a file only when a value changes.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _emit(table: dict[str, Any], path: list[str], out: list[str], level: int) -> None:
    """Write `table`'s keys, then its sub-tables; `level` = headers written above it."""
    indent = "  " * level
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            out.append(f"{indent}{_key(key)} = {_value(value)}")
    for key, value in table.items():
        sub = path + [key]
        dotted = ".".join(_key(k) for k in sub)
        if isinstance(value, dict):
            # a table holding only tables needs no header of its own (it is implied)
            implied = bool(value) and all(isinstance(v, dict) for v in value.values())
            if not implied:
                if out:
                    out.append("")
                out.append(f"{indent}[{dotted}]")
            _emit(value, sub, out, level if implied else level + 1)
        elif _is_table_array(value):
            for item in value:
                if out:
                    out.append("")
                out.append(f"{indent}[[{dotted}]]")
                _emit(item, sub, out, level + 1)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for `data` (a dict as tomllib returns it)."""
    out: list[str] = []
    _emit(data, [], out, 0)
    return "\n".join(out) + "\n"
