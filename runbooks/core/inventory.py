"""Load and validate an inventory (hosts/*.yaml) into frozen model objects.

    from runbooks.core.inventory import load_inventory
    inv = load_inventory("hosts/lab.yaml")   # raises InventoryError listing every problem
    for host in inv.select("rp0,gateway"): ...

The whole file is checked before anything else happens; every problem names the file, line,
dotted key and what to do. The model classes live in `inventory_model`, the checks in
`inventory_fields`, `inventory_network` and `inventory_hosts`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from runbooks.core import inventory_schema
from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_hosts import check_across_hosts, read_hosts
from runbooks.core.inventory_model import (
    BOARD_BOOT,
    KNOWN_BOARDS,
    KNOWN_ROLES,
    REGISTRY_RUNTIMES,
    Dhcp,
    Host,
    Inventory,
    InventoryError,
    Network,
    Problem,
    Registry,
    Vlan,
)
from runbooks.core.inventory_network import read_network
from runbooks.core.inventory_yaml import parse_yaml

__all__ = [
    "BOARD_BOOT", "KNOWN_BOARDS", "KNOWN_ROLES", "REGISTRY_RUNTIMES", "Dhcp", "Host",
    "Inventory", "InventoryError", "Network", "Problem", "Registry", "Vlan", "load_inventory",
    "parse_inventory",
]

TOP_KEYS = {"site": True, "defaults": False, "network": True, "registry": False, "hosts": True}
DEFAULTS_KEYS = {"user": False, "port": False}
REGISTRY_KEYS = {"host": True, "port": False, "runtime": False}


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read and validate the inventory at `path`; raise InventoryError with every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(name, [Problem(name, None, "", "file not found; check the path "
                             "(inventories live in hosts/, e.g. hosts/lab.yaml)")]) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InventoryError(name, [Problem(name, None, "", f"cannot read the file ({reason}); "
                             "check that it exists, is readable and is UTF-8 text")]) from None
    return parse_inventory(text, name)


def parse_inventory(text: str, file: str = "<inventory>") -> Inventory:
    """Validate inventory YAML `text` (named `file` in messages); raise InventoryError."""
    data, lines, yaml_problems = parse_yaml(text)
    c = Collector(file, lines)
    for line, key_path, message in yaml_problems:
        c.add(key_path, message, line=line)
    if data is None and not yaml_problems:
        c.add((), "the file is empty; start from a copy of hosts/lab.yaml or hosts/demo.yaml")
    inventory = _build(c, data, Path(file)) if data is not None else None
    if c.problems or inventory is None:
        problems = sorted(c.problems, key=lambda p: p.line or 0)
        raise InventoryError(file, problems or [Problem(file, None, "", "invalid inventory")])
    return inventory


def _build(c: Collector, data: Any, path: Path) -> Inventory | None:
    """Check every section, then build the Inventory when nothing was wrong."""
    declared = inventory_schema.sections()
    keys = {**TOP_KEYS, **{name: section.required for name, section in declared.items()}}
    top = c.mapping(data, (), keys, "site: lab / network: ... / hosts: ...")
    if top is None:
        return None
    site = c.text(top.get("site"), ("site",), "a site name (like lab or demo)")
    defaults = _read_defaults(c, top.get("defaults"))
    plan = read_network(c, top.get("network"))
    hosts = read_hosts(c, top.get("hosts"), defaults, plan, top)
    check_across_hosts(c, top.get("hosts"), hosts, plan)
    registry = _read_registry(c, top.get("registry"), top.get("hosts"), hosts)
    network = plan.build()
    context = inventory_schema.SectionContext(hosts, network, top)
    # every reader runs, with None for an absent section: it may require itself (say, when
    # hosts have the roles that need it); a None result is left out
    read = {name: section.reader(c, top.get(name), context) for name, section in declared.items()}
    sections = {name: value for name, value in read.items() if value is not None}
    if c.problems or site is None or network is None:
        return None
    return Inventory(path, site, network, registry, hosts, sections)


def _read_defaults(c: Collector, value: Any) -> dict[str, Any]:
    """The `defaults:` section (user, port) applied to hosts that do not set their own."""
    if value is None:
        return {}
    section = c.mapping(value, ("defaults",), DEFAULTS_KEYS, "defaults: {user: root, port: 22}")
    if section is None:
        return {}
    out: dict[str, Any] = {}
    user = c.text(section.get("user"), ("defaults", "user"), "a user name")
    if user is not None:
        out["user"] = user
    port = c.integer(section.get("port"), ("defaults", "port"), 1, 65535, "an SSH port")
    if port is not None:
        out["port"] = port
    return out


def _read_registry(c: Collector, value: Any, raw_hosts: Any, hosts: dict[str, Host],
                   ) -> Registry | None:
    """The image registry: on a defined host, a valid port, a known runtime."""
    if value is None:
        return None
    section = c.mapping(value, ("registry",), REGISTRY_KEYS,
                        "registry: {host: dell, port: 5001, runtime: package}")
    if section is None:
        return None
    names = [str(n) for n in raw_hosts] if isinstance(raw_hosts, dict) else []
    host = c.text(section.get("host"), ("registry", "host"), "a host name")
    if host is not None and host not in names:
        close = difflib.get_close_matches(host, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"hosts: {', '.join(names)}"
        c.add(("registry", "host"), f"registry host '{host}' is not defined under hosts; {hint}")
        host = None
    elif host in hosts and "registry" not in hosts[host].roles:
        c.add(("registry", "host"), f"host '{host}' runs the registry but lacks the role; add "
                                    f"registry to hosts.{host}.roles")
    port = c.integer(section.get("port", 5000), ("registry", "port"), 1, 65535,
                     "a TCP port")
    runtime = c.choice(section.get("runtime", "package"), ("registry", "runtime"),
                       REGISTRY_RUNTIMES, "registry runtime")
    if host is None or port is None or runtime is None:
        return None
    return Registry(host, port, runtime)
