"""The inventory's extension point: top-level sections and per-role `vars:` that runbooks add.

The core inventory knows site, defaults, network, registry and hosts. Everything else is
declared by the layers above: the runbooks' sections and vars in small files under
`runbooks/common/schema/`, the virtual lab's `lab:` section and per-host `lab:` key in
`runbooks/lab/schema.py` (plugged in from the CLI layer). A layer names its declaration
module with `declare_from("package.module")`; it is imported the first time an inventory is
read, so a command that reads none (`inv --list`) does not pay for it. Declarations are
validated with the rest of the file before anything runs: an unknown key is reported with
file, line, dotted key and a "did you mean"; a wrong type says what is expected.

Per-role vars (a host's `vars:` may use the keys of any of its roles)::

    # runbooks/common/schema/k3s.py
    from runbooks.core.inventory_schema import Field, Table, register_vars

    register_vars("k3s-server", {
        "version": Field(str, "a k3s release such as v1.28.5+k3s1", pattern=r"v1\\.\\d+\\..*"),
        "disable": Field(list, "component names such as [traefik]", items=Field(str)),
        "etcd": Table({"snapshots": Field(int, "how many snapshots to keep", low=0)}),
    })

A top-level section, declared as a schema (the validated mapping lands in
`inventory.sections["metallb"]`)::

    register_section("metallb", schema=Table({
        "pool": Field(str, "an address range such as 192.168.10.200-192.168.10.220",
                      required=True)}))

or read by a function of your own, which gets the Collector (report problems with
`c.add(path, message)`; its typed readers such as `c.ipv4` do it for you), the raw value
(None when the section is absent: the reader may require it, say when hosts have the roles
that need it) and a `SectionContext` with the hosts and network already read; whatever it
returns (unless None) lands in `inventory.sections[name]`::

    @register_section("cluster")
    def read_cluster(c: Collector, value: Any, ctx: SectionContext) -> Cluster | None: ...

A per-host key (beside address, roles, vars...), read by a function of your own that gets
the Collector, the raw value (None when absent), the key's path and a `HostKeyContext`;
whatever it returns (unless None) lands in `host.sections[name]`::

    @register_host_key("lab")
    def read_host_lab(c: Collector, value: Any, path: Path_, ctx: HostKeyContext) -> ...: ...

Sections are optional unless `required=True`. Names must not clash with core's keys or with
another declaration (a clash raises at import, so it shows up in the first test run).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbooks.core.inventory_fields import Collector
    from runbooks.core.inventory_model import Host, Network

Path_ = tuple[str | int, ...]
CORE_SECTIONS = ("site", "defaults", "network", "registry", "hosts")
CORE_HOST_KEYS = ("address", "user", "port", "via", "roles", "board", "upstream", "vlan", "vars")
_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number",
               str: "a string", list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Field:
    """One value: its type(s), what it is (for messages) and optional finer checks.

    `types`: a type or a tuple of types (bool is never accepted as int); `pattern`: a regular
    expression a string must match in full; `choices`: allowed values; `low`/`high`: bounds
    of a number; `items`: the Field (or Table) of every list item; `check`: a function
    returning a message when the value is wrong (None when fine)."""

    types: type | tuple[type, ...]
    what: str = ""
    required: bool = False
    pattern: str | None = None
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    items: Field | Table | None = None
    check: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Table:
    """A mapping with known keys; `extra` (a Field) admits any other key with that value,
    whose name must match `extra_keys` (a regular expression) when given."""

    fields: Mapping[str, Field | Table]
    what: str = ""
    required: bool = False
    extra: Field | None = None
    extra_keys: str | None = None


Schema = Field | Table


@dataclass(frozen=True)
class SectionContext:
    """What a section reader may look at: the hosts and network read so far (None when the
    network section itself was invalid)."""

    hosts: Mapping[str, Host]
    network: Network | None
    raw: Mapping[str, Any] = field(default_factory=dict)


Reader = Callable[["Collector", Any, SectionContext], Any]


@dataclass(frozen=True)
class HostKeyContext:
    """What a per-host key's reader may look at: the host's name, roles and board, and the
    file's raw top-level mapping (to see whether a section it depends on is present)."""

    name: str
    roles: tuple[str, ...]
    board: str | None
    raw: Mapping[str, Any] = field(default_factory=dict)


HostKeyReader = Callable[["Collector", Any, Path_, HostKeyContext], Any]


@dataclass(frozen=True)
class Section:
    name: str
    reader: Reader
    required: bool = False


_sections: dict[str, Section] = {}
_vars: dict[str, dict[str, Schema]] = {}
_host_keys: dict[str, HostKeyReader] = {}
_pending: list[str] = []  # declaration modules named, not imported yet


def declare_from(module: str) -> None:
    """Name a module whose import registers declarations; imported when first needed."""
    if module not in _pending:
        _pending.append(module)


def _load_pending() -> None:
    from importlib import import_module

    while _pending:
        import_module(_pending[0])
        _pending.pop(0)


def register_section(name: str, schema: Table | None = None, *,
                     required: bool = False) -> Callable[[Reader], Reader]:
    """Declare top-level section `name`, validated by `schema` (then its value is the
    checked mapping) or by the decorated reader function."""
    if name in CORE_SECTIONS or name in _sections:
        raise ValueError(f"inventory section {name!r} is already declared")

    def add(reader: Reader) -> Reader:
        _sections[name] = Section(name, reader, required)
        return reader

    if schema is not None:
        def from_schema(c: Collector, value: Any, ctx: SectionContext) -> Any:
            if value is None:
                return None  # absent (a required section is reported by the top-level check)
            return value if validate(c, value, (name,), schema) else None

        add(from_schema)
    return add


def register_vars(role: str, fields: Mapping[str, Schema]) -> None:
    """Declare the `vars:` keys hosts with `role` may set (several declarations for one role
    add up; one key declared twice for a role is an error)."""
    known = _vars.setdefault(role, {})
    for key, schema in fields.items():
        if key in known:
            raise ValueError(f"vars key {key!r} of role {role!r} is already declared")
        known[key] = schema


def register_host_key(name: str) -> Callable[[HostKeyReader], HostKeyReader]:
    """Declare a per-host key `name`, read by the decorated function."""
    if name in CORE_HOST_KEYS or name in _host_keys:
        raise ValueError(f"host key {name!r} is already declared")

    def add(reader: HostKeyReader) -> HostKeyReader:
        _host_keys[name] = reader
        return reader

    return add


def sections() -> dict[str, Section]:
    """The declared top-level sections, by name."""
    _load_pending()
    return dict(_sections)


def host_keys() -> dict[str, HostKeyReader]:
    """The declared per-host keys and their readers, by name."""
    _load_pending()
    return dict(_host_keys)


def vars_schema(roles: tuple[str, ...] | list[str]) -> dict[str, Schema]:
    """The vars keys a host with `roles` may set (the union of its roles' declarations)."""
    _load_pending()
    merged: dict[str, Schema] = {}
    for role in roles:
        merged.update(_vars.get(role, {}))
    return merged


def check_vars(c: Collector, value: Any, path: Path_, roles: tuple[str, ...]) -> bool:
    """Validate one host's `vars:` against its roles' declarations; True when fine."""
    if value is None:
        return True
    import difflib

    known = vars_schema(roles)
    if not isinstance(value, dict):
        c.add(path, f"must be a mapping of settings, got {_kind(value)}")
        return False
    ok = True
    for key, item in value.items():
        if str(key) not in known:
            ok = False
            if known:
                close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
                hint = (f"did you mean '{close[0]}'?" if close
                        else f"allowed keys: {', '.join(known)}")
            else:
                hint = (f"hosts with roles {', '.join(roles) or '(none)'} take no vars; "
                        "remove it or add the role that uses it")
            c.add((*path, str(key)), f"unknown key '{key}'; {hint}")
            continue
        ok &= validate(c, item, (*path, str(key)), known[str(key)])
    for key, schema in known.items():
        if schema.required and value.get(key) is None:
            ok = False
            c.add((*path, key), f"missing required key '{key}'; add it")
    return ok


def validate(c: Collector, value: Any, path: Path_, schema: Schema) -> bool:
    """Check `value` against `schema`, recording every problem; True when fine."""
    if isinstance(schema, Table):
        return _table(c, value, path, schema)
    return _field(c, value, path, schema)


def _kind(value: Any) -> str:
    from runbooks.core.inventory_fields import kind_of

    return kind_of(value)


def _expected(schema: Field) -> str:
    types = schema.types if isinstance(schema.types, tuple) else (schema.types,)
    words = " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types)
    return f"{words} ({schema.what})" if schema.what else words


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    wanted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in wanted
    if isinstance(value, int) and float in wanted:
        return True
    return isinstance(value, wanted)


def _field(c: Collector, value: Any, path: Path_, schema: Field) -> bool:
    if not _is(value, schema.types):
        c.add(path, f"must be {_expected(schema)}, got {_kind(value)} {value!r}")
        return False
    message = None
    if schema.choices is not None and value not in schema.choices:
        import difflib

        close = difflib.get_close_matches(str(value), [str(v) for v in schema.choices], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        message = (f"{value!r} is not allowed; {hint}use one of: "
                   f"{', '.join(str(v) for v in schema.choices)}")
    elif (schema.pattern is not None and isinstance(value, str)
          and not re.fullmatch(schema.pattern, value)):
        message = f"{value!r} is not {schema.what or 'in the expected form'}"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (schema.low is not None and value < schema.low)
            or (schema.high is not None and value > schema.high)):
        low, high = _number(schema.low), _number(schema.high)
        bounds = (f"between {low} and {high}" if schema.low is not None
                  and schema.high is not None
                  else f"at least {low}" if schema.low is not None else f"at most {high}")
        message = f"{value} is out of range: {schema.what or 'it'} must be {bounds}"
    if message:
        c.add(path, message)
        return False
    # the items first: a check across them (`check`) may assume each has its own type
    if schema.items is not None and isinstance(value, list) and not all(
            [validate(c, item, (*path, index), schema.items) for index, item in enumerate(value)]):
        return False
    message = schema.check(value) if schema.check is not None else None
    if message:
        c.add(path, message)
        return False
    return True


def _table(c: Collector, value: Any, path: Path_, schema: Table) -> bool:
    if not isinstance(value, dict):
        what = f" ({schema.what})" if schema.what else ""
        c.add(path, f"must be a mapping{what}, got {_kind(value)} {value!r}")
        return False
    ok = True
    for key, item in value.items():
        sub = schema.fields.get(str(key))
        if sub is None and schema.extra is not None:
            if schema.extra_keys and not re.fullmatch(schema.extra_keys, str(key)):
                ok = False
                what = schema.extra.what or "a valid key here"
                c.add((*path, str(key)), f"key {str(key)!r} is not {what}: it must match "
                                         f"{schema.extra_keys}")
                continue
            sub = schema.extra
        if sub is None:
            ok = False
            c.unknown_key(path, str(key), list(schema.fields))
            continue
        ok &= validate(c, item, (*path, str(key)), sub)
    for key, sub in schema.fields.items():
        if sub.required and value.get(key) is None:
            ok = False
            c.add((*path, key), f"missing required key '{key}'; add it")
    return ok


def _number(value: float | None) -> str:
    """A bound as the user writes it: 4294967294, not 4.29497e+09."""
    return str(value) if isinstance(value, int) else f"{value:g}"
