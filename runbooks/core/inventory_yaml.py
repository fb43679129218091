"""Read YAML text into plain Python data plus the 1-based line of every key and list item.

`parse_yaml(text)` returns `(data, lines, problems)`: `lines` maps a path tuple such as
("hosts", "rp0", "vlan", "address") or ("network", "dhcp", "range", 0) to its line. Syntax
errors and duplicate keys come back as `(line, message)` problems, never as exceptions.
"""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_MERGE = "tag:yaml.org,2002:merge"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~3x faster


def parse_yaml(text: str) -> tuple[Any, dict[Path_, int], list[tuple[int | None, Path_, str]]]:
    """Parse one YAML document; return data, key lines and (line, path, message) problems."""
    loader = _Loader(text)
    lines: dict[Path_, int] = {}
    problems: list[tuple[int | None, Path_, str]] = []
    try:
        node = loader.get_single_node()
        data = _convert(loader, node, (), lines, problems) if node is not None else None
    except yaml.MarkedYAMLError as error:
        return None, lines, [_syntax_problem(error)]
    except yaml.YAMLError as error:  # pragma: no cover - pyyaml marks nearly every error
        return None, lines, [(None, (), f"YAML error: {error}; fix the file and try again")]
    finally:
        loader.dispose()
    return data, lines, problems


def _syntax_problem(error: yaml.MarkedYAMLError) -> tuple[int | None, Path_, str]:
    """Turn a PyYAML error into a (line, path, message) problem with line and column."""
    mark = error.problem_mark or error.context_mark
    what = error.problem or "invalid YAML"
    if error.context:
        what = f"{what} ({error.context})"
    if mark is None:  # pragma: no cover - defensive
        return None, (), f"YAML syntax error: {what}; fix the file and try again"
    hint = "check the indentation (spaces, not tabs) and quote values containing ': ' or '#'"
    return (
        mark.line + 1, (),
        f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}; {hint}",
    )


def _convert(
    loader: Any, node: yaml.Node, path: Path_,
    lines: dict[Path_, int], problems: list[tuple[int | None, Path_, str]],
) -> Any:
    """Build plain data from a node, recording the line of every key and list item."""
    if isinstance(node, yaml.MappingNode):
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        loader.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first
        first_own = len(node.value) - own
        result: dict[Any, Any] = {}
        merged: set[Any] = set()  # keys whose value came from a merge: own keys override them
        for index, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            key_path = (*path, str(key))
            line = key_node.start_mark.line + 1
            if index < first_own or key in merged:
                merged.discard(key)
                if index < first_own:
                    merged.add(key)
                result.pop(key, None)
            if key in result:
                first = lines.get(key_path)
                problems.append((
                    line, key_path,
                    (f"key '{key}' appears twice (first at line {first}); the later one "
                     "would silently win: keep only one"),
                ))
                continue
            lines[key_path] = line
            result[key] = _convert(loader, value_node, key_path, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            item_path = (*path, index)
            lines[item_path] = item_node.start_mark.line + 1
            items.append(_convert(loader, item_node, item_path, lines, problems))
        return items
    return loader.construct_object(node, deep=True)
