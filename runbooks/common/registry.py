"""The site's image registry endpoint, computed in one place for every runbook and task.

Boards reach the registry at its host's VLAN address (the gateway's is network.gateway when
its vlan has no explicit address), else at the host's management address, on the port the
inventory's `registry:` names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from runbooks.core.steps import StepFailed


@dataclass(frozen=True)
class Endpoint:
    """Where the registry listens: `host` (inventory name), `address` and `port`."""

    host: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self}"


def registry_endpoint(inventory: Any) -> Endpoint | None:
    """The inventory's registry endpoint, or None when it has no `registry:` section."""
    registry = getattr(inventory, "registry", None)
    if registry is None:
        return None
    host = inventory.hosts.get(registry.host)
    if host is None:  # the inventory check refuses this; kept for hand-built inventories
        return Endpoint(registry.host, registry.host, registry.port)
    if host.vlan is not None and host.vlan.address is not None:
        address = str(host.vlan.address.ip)
    elif "gateway" in host.roles:
        address = str(inventory.network.gateway)
    else:
        address = host.address
    return Endpoint(host.name, address, registry.port)


def required_endpoint(inventory: Any) -> Endpoint:
    """The registry endpoint; StepFailed naming the section to add when there is none."""
    endpoint = registry_endpoint(inventory)
    if endpoint is None:
        raise StepFailed(f"{inventory.path}: no `registry:` section; add `registry: {{host: "
                         "<gateway name>, port: 5001}}`, then run again")
    return endpoint


# -- the upstream registries nodes mirror -------------------------------------------------------

DOCKER_HUB = "docker.io"
YAML_KEYS = ("images:", "platforms:", "rewrite:")  # how a YAML image list is told from text


def upstream_host(ref: str) -> str:
    """The registry an image reference names, by Docker's rule: the first path component
    when it has a '.' or ':' or is `localhost`, else Docker Hub."""
    first, _, rest = ref.strip().partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def _list_refs(data: Any) -> list[str]:
    """Every image reference of a parsed image list: the entries of `images:` and of each
    `versions:` entry (a reference string or a mapping with `ref`)."""
    lists: list[Any] = []
    if isinstance(data, dict):
        lists.append(data.get("images"))
        versions = data.get("versions")
        if isinstance(versions, dict):
            lists.extend(versions.values())
    refs = []
    for entries in lists:
        for entry in entries if isinstance(entries, list) else []:
            ref = entry.get("ref") if isinstance(entry, dict) else entry
            if isinstance(ref, str) and ref.strip():
                refs.append(ref)
    return refs


def mirrored_upstreams(base: Any = None) -> tuple[str, ...]:
    """The upstream registries the nodes get a mirror entry for: every registry an image of
    the image lists comes from (`files/registry/images.yaml` and `images.d/*.yaml`, every
    version and condition), sorted. Independent of the inventory's sections, so registry.trust,
    k3s, microk8s and pi-prep write the same entries; a mirror entry for a registry none of
    whose images the site needs costs nothing. StepFailed naming the file when a list is
    unreadable."""
    from pathlib import Path

    from runbooks.core.templates import FILES

    path = Path(base) if base is not None else FILES / "registry" / "images.yaml"
    files = [path, *sorted((path.parent / "images.d").glob("*.yaml"))]
    try:  # each node's plans ask (registry.trust, k3s, pi-prep): the lists read once
        key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        key = None
    with _UPSTREAMS_LOCK:
        known = _UPSTREAMS.get(key) if key is not None else None
    if known is not None:
        return known
    found = _read_upstreams(path, files)
    if key is not None:
        with _UPSTREAMS_LOCK:
            _UPSTREAMS[key] = found
    return found


_UPSTREAMS: dict[tuple[tuple[str, int, int], ...], tuple[str, ...]] = {}
_UPSTREAMS_LOCK = threading.Lock()


def _read_upstreams(path: Any, files: list[Any]) -> tuple[str, ...]:
    import yaml

    hosts: set[str] = set()
    for file in files:
        try:
            text = file.read_text()
        except OSError as exc:
            raise StepFailed(f"cannot read the image list {file}: {exc.strerror}") from None
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        if file == path and not any(ln.startswith(YAML_KEYS) for ln in lines):
            data = {"images": [ln for ln in lines if ln]}  # plain text: one per line
        else:
            try:
                # libyaml's parser where PyYAML has it (every node's plan reads the lists)
                data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as exc:
                raise StepFailed(f"{file}: not valid YAML ({exc}); fix it, then run "
                                 "again") from None
        hosts.update(upstream_host(ref) for ref in _list_refs(data))
    return tuple(sorted(hosts))
