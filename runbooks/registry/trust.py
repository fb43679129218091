"""Pure mergers that make container runtimes pull from the site's plain-HTTP registry.

Each takes a file's current content (None when it does not exist) and the registry's
`host:port`, and returns the wanted content. They merge into what is there: every other
setting is kept, and a file that already says what we need is returned unchanged, byte for
byte (so a converged node costs no write and no restart). Bad existing content raises
`TrustError` (a ValueError: the engine reports it with the file's path) saying what to fix.

- containerd: `config_path` in /etc/containerd/config.toml must list /etc/containerd/certs.d
  (a careful text merge keeps comments; the result is parsed back and compared), and
  certs.d/<host:port>/hosts.toml names the registry with pull and resolve.
- k3s: /etc/rancher/k3s/registries.yaml `mirrors` + `configs` entries for the registry.
- microk8s: args/certs.d/<host:port>/hosts.toml (the same hosts.toml as containerd).
- Docker: /etc/docker/daemon.json `insecure-registries` lists the registry.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from typing import Any

import yaml

CERTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
K3S_REGISTRIES = "/etc/rancher/k3s/registries.yaml"
MICROK8S_CERTS_DIR = "/var/snap/microk8s/current/args/certs.d"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
CAPABILITIES = ("pull", "resolve")
HEADER = "# Written by greenroom registry.trust; other settings are kept on every merge.\n"
_V2_REGISTRY = ("plugins", "io.containerd.grpc.v1.cri", "registry")
_V3_REGISTRY = ("plugins", "io.containerd.cri.v1.images", "registry")
_HEADER_LINE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(?:#.*)?$")


class TrustError(ValueError):
    """An existing runtime config cannot be merged safely; the message says what to do."""


def _toml(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrustError(f"{what} is not valid TOML ({exc}); fix it or move it away, "
                         "then run again") from None


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any, what: str) -> None:
    node = data
    for depth, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise TrustError(f"{what}: {'.'.join(path[: depth + 1])} is a "
                             f"{type(child).__name__}, expected a table; fix it by hand")
        node = child
    node[path[-1]] = value


# -- containerd config.toml ------------------------------------------------------------------

def containerd_registry_table(data: dict[str, Any], major: int) -> tuple[int, tuple[str, ...]]:
    """(config version, path of the table that holds `config_path`) for this config."""
    from runbooks.pi_prep.containerd import config_version

    try:
        version = config_version(data, major)
    except ValueError as exc:
        raise TrustError(str(exc)) from None
    return version, (_V2_REGISTRY if version == 2 else _V3_REGISTRY)


def merge_containerd_config(content: str | None, major: int) -> str:
    """config.toml whose registry `config_path` lists /etc/containerd/certs.d.

    `major` is containerd's major version (it decides the layout of a file without
    `version`). A different config_path is kept after ours (containerd splits it on ':').
    """
    text = content or ""
    data = _toml(text, "it")
    version, table = containerd_registry_table(data, major)
    current = _dig(data, table + ("config_path",))
    if current is not None and not isinstance(current, str):
        raise TrustError(f"{'.'.join(table)}.config_path is {current!r}; expected a string")
    if current and CERTS_DIR in current.split(":"):
        return text
    mirrors = _dig(data, table + ("mirrors",))
    if mirrors:
        raise TrustError(
            f"{'.'.join(table)}.mirrors cannot be used together with config_path: move each "
            f"mirror to {CERTS_DIR}/<registry>/hosts.toml, remove the mirrors table, then "
            "run again")
    value = f"{CERTS_DIR}:{current}" if current else CERTS_DIR
    wanted = copy.deepcopy(data)
    wanted["version"] = version
    _set(wanted, table + ("config_path",), value, "it")
    merged = _text_merge(text, "version" not in data, version, table, current, value)
    if merged is not None and _parses_to(merged, wanted):
        return merged
    from runbooks.pi_prep.toml_write import dumps

    body = {"version": version, **{k: v for k, v in wanted.items() if k != "version"}}
    return HEADER + dumps(body)


def _parses_to(text: str, wanted: dict[str, Any]) -> bool:
    try:
        return tomllib.loads(text) == wanted
    except tomllib.TOMLDecodeError:
        return False


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _header_path(line: str) -> tuple[str, ...] | None:
    """The key path of a `[table]` header line, or None for any other line."""
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    try:
        node: Any = tomllib.loads(f"[{match.group(1)}]\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(key)
        node = node[key]
    return tuple(path)


def _text_merge(text: str, add_version: bool, version: int, table: tuple[str, ...],
                current: str | None, value: str) -> str | None:
    """Set config_path by editing lines (keeps comments); None when no simple edit fits."""
    lines = text.splitlines()
    setting = f"config_path = {json.dumps(value)}"
    header = next((i for i, ln in enumerate(lines) if _header_path(ln) == table), None)
    if current is not None:
        if header is None:
            return None
        for i in range(header + 1, len(lines)):
            if _header_path(lines[i]) is not None:
                break
            if re.match(r"\s*config_path\s*=", lines[i]):
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                lines[i] = indent + setting
                break
        else:
            return None
    elif header is not None:
        following = lines[header + 1] if header + 1 < len(lines) else ""
        indent = following[: len(following) - len(following.lstrip())] if following.strip() \
            else lines[header][: len(lines[header]) - len(lines[header].lstrip())] + "  "
        lines.insert(header + 1, indent + setting)
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{'.'.join(_toml_key(k) for k in table)}]", f"  {setting}"]
    if add_version:
        lines.insert(0, f"version = {version}")
    return "\n".join(lines) + "\n"


# -- hosts.toml (containerd and microk8s) ----------------------------------------------------

def hosts_toml(endpoint: str) -> str:
    """A fresh certs.d/<endpoint>/hosts.toml: pull and resolve over plain HTTP."""
    from runbooks.core.templates import render

    return render("registry/hosts.toml.j2", endpoint=endpoint)


def merge_hosts_toml(content: str | None, endpoint: str) -> str:
    """hosts.toml that sends pulls of `endpoint` to http://endpoint.

    An existing file that already has `server = "http://<endpoint>"` and a
    `[host."http://<endpoint>"]` with pull and resolve is kept as it is (pi-prep writes the
    same file; skip_verify is only written into a new file, TLS is never used over plain
    HTTP); otherwise our settings are merged in and other hosts/keys are kept.
    """
    url = f"http://{endpoint}"
    if content is None or not content.strip():
        return hosts_toml(endpoint)
    data = _toml(content, "it")
    host = _dig(data, ("host", url))
    capabilities = host.get("capabilities") if isinstance(host, dict) else None
    if (data.get("server") == url and isinstance(capabilities, list)
            and set(CAPABILITIES) <= set(capabilities)):
        return content
    wanted = copy.deepcopy(data)
    wanted["server"] = url
    entry = _dig(wanted, ("host", url))
    if entry is not None and not isinstance(entry, dict):
        raise TrustError(f'host."{url}" is a {type(entry).__name__}, expected a table')
    have = list(entry.get("capabilities") or []) if entry else []
    _set(wanted, ("host", url, "capabilities"),
         have + [c for c in CAPABILITIES if c not in have], "it")
    _dig(wanted, ("host", url)).setdefault("skip_verify", True)
    from runbooks.pi_prep.toml_write import dumps

    body = {"server": url, **{k: v for k, v in wanted.items() if k != "server"}}
    return HEADER + dumps(body)


# -- k3s registries.yaml ---------------------------------------------------------------------

def _mapping(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """parent[key] as a mapping (created when missing or empty); TrustError otherwise."""
    value = parent.get(key)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise TrustError(f"{where} is a {type(value).__name__}, expected a mapping")
    parent[key] = value
    return value


def merge_k3s_registries(content: str | None, endpoint: str) -> str:
    """registries.yaml with a mirror for `endpoint` (http://endpoint first) and a TLS config
    that skips verification; other mirrors, configs and keys are kept."""
    url = f"http://{endpoint}"
    try:
        data = yaml.safe_load(content or "") or {}
    except yaml.YAMLError as exc:
        raise TrustError(f"it is not valid YAML ({exc}); fix it or move it away, then run "
                         "again") from None
    if not isinstance(data, dict):
        raise TrustError(f"it holds a {type(data).__name__}, expected a mapping with "
                         "`mirrors:` and `configs:`")
    wanted = copy.deepcopy(data)
    mirror = _mapping(_mapping(wanted, "mirrors", "`mirrors:`"), endpoint,
                      f"mirrors.{endpoint}")
    endpoints = mirror.get("endpoint") or []
    if not isinstance(endpoints, list):
        raise TrustError(f"mirrors.{endpoint}.endpoint is not a list of URLs")
    if url not in endpoints:
        mirror["endpoint"] = [url, *endpoints]
    config = _mapping(_mapping(wanted, "configs", "`configs:`"), endpoint,
                      f"configs.{endpoint}")
    _mapping(config, "tls", f"configs.{endpoint}.tls")["insecure_skip_verify"] = True
    if wanted == data:
        return content or ""
    return HEADER + yaml.safe_dump(wanted, default_flow_style=False, sort_keys=False)


# -- Docker daemon.json ----------------------------------------------------------------------

def merge_daemon_json(content: str | None, endpoint: str) -> str:
    """daemon.json whose `insecure-registries` lists `endpoint`; other keys kept."""
    text = content or ""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise TrustError(f"it is not valid JSON ({exc}); fix it or move it away, then run "
                         "again") from None
    if not isinstance(data, dict):
        raise TrustError(f"it holds a JSON {type(data).__name__}, expected an object")
    registries = data.get("insecure-registries", [])
    if not isinstance(registries, list) or not all(isinstance(r, str) for r in registries):
        raise TrustError("`insecure-registries` must be a list of \"host:port\" strings")
    if endpoint in registries:
        return text
    merged = {**data, "insecure-registries": [*registries, endpoint]}
    return json.dumps(merged, indent=2) + "\n"
