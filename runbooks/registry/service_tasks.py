"""Invoke tasks registry.up, registry.trust and registry.check; `add_to(ns)` adds them.

registry.check is read-only: it asks the registry for `/v2/` and `/v2/_catalog` with curl
on the registry host itself, over SSH (the laptop or the lab machine often has no route to
the VLAN), or with --direct from this machine over HTTP. It exits 1 when unhealthy.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from invoke import Collection, Context, Exit

from runbooks.core.cli import load_inventory_or_exit, runbook_task, task

# what registry.trust can configure (runbooks.registry.converge.RUNTIMES; kept here so
# that loading the task list does not import the runbooks)
RUNTIME_NAMES = ("containerd", "k3s", "microk8s", "docker")

up = runbook_task(
    "runbooks.registry.converge:UP",
    """Run the local image registry on registry.host, healthy on /v2/.

    registry.runtime package (default) = Debian's docker-registry as a systemd service,
    docker = a registry:2 container. It listens on the host's VLAN address and the
    inventory's port, keeps its storage on disk and starts at boot.""",
    name="up",
)

trust = runbook_task(
    "runbooks.registry.converge:TRUST",
    """Make the cluster nodes pull from the local registry over plain HTTP.

    Each runtime in its own config, merged into what is there: containerd config_path +
    certs.d/<host:port>/hosts.toml, k3s registries.yaml, microk8s certs.d, Docker
    daemon.json; plus one mirror entry per upstream registry of the image lists (of
    --images FILE too). A runtime restarts only when its config changed.""",
    name="trust",
    extra={"runtimes": ("auto", "runtimes to configure: auto (detected on each node) or a "
                                "comma list of " + ", ".join(RUNTIME_NAMES)),
           "images": (None, "your own image list (as given to registry.load-images "
                            "--images): its upstream registries get mirror entries too, "
                            "besides files/registry's")},
)


@dataclass(frozen=True)
class Health:
    """What the registry said: healthy when /v2/ answered; its repositories."""

    url: str
    healthy: bool
    detail: str
    repositories: tuple[str, ...] = ()

    def text(self) -> str:
        state = "healthy" if self.healthy else f"NOT healthy: {self.detail}"
        lines = [f"registry {self.url}: {state}"]
        if self.healthy:
            lines.append(f"catalog: {len(self.repositories)} repositor"
                         f"{'y' if len(self.repositories) == 1 else 'ies'}")
            lines += [f"  {name}" for name in self.repositories]
        return "\n".join(lines)


def parse_catalog(text: str) -> tuple[str, ...]:
    """The body of `/v2/_catalog` -> repository names; ValueError when it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the catalog is not JSON ({exc}): {text[:200]!r}") from None
    names = data.get("repositories") if isinstance(data, dict) else None
    if not isinstance(names, list):
        raise ValueError(f"the catalog has no `repositories` list: {text[:200]!r}")
    return tuple(str(n) for n in names)


def health_from(url: str, v2: tuple[int, str], catalog: tuple[int, str]) -> Health:
    """Health from (exit code, output) of the /v2/ and /v2/_catalog requests."""
    if v2[0] != 0:
        return Health(url, False, v2[1].strip() or f"exit {v2[0]}")
    if catalog[0] != 0:
        return Health(url, False, f"/v2/_catalog failed: {catalog[1].strip()}")
    try:
        return Health(url, True, "", parse_catalog(catalog[1]))
    except ValueError as exc:
        return Health(url, False, str(exc))


def _over_ssh(inv: object, host_name: str, url: str) -> Health:
    from runbooks.core.session import Connector, HostUnreachable, SessionError

    connector = Connector(inv)  # type: ignore[arg-type]
    try:
        session = connector.session(inv.hosts[host_name])  # type: ignore[attr-defined]
        results = []
        for path in ("/v2/", "/v2/_catalog?n=1000"):
            done = session.run(f"curl -fsS -m 5 {shlex.quote(url + path)} 2>&1")
            if done.rc == 127:
                raise Exit(f"{host_name} has no curl: run `inv registry.up` (installs it)",
                           code=2)
            results.append((done.rc, done.stdout))
    except (HostUnreachable, SessionError) as exc:
        raise Exit(f"registry.check: cannot reach {host_name}: {exc}", code=2) from None
    finally:
        connector.close_all()
    return health_from(url, results[0], results[1])


def _direct(url: str) -> Health:
    import requests

    results = []
    for path in ("/v2/", "/v2/_catalog?n=1000"):
        try:
            response = requests.get(url + path, timeout=5)
            results.append((0 if response.ok else 22, response.text if response.ok
                            else f"HTTP {response.status_code}"))
        except requests.RequestException as exc:
            results.append((7, str(exc)))
    return health_from(url, results[0], results[1])


@task(shared=("inventory",), help={
    "direct": "ask from this machine over HTTP instead of with curl on the registry host "
              "over SSH (needs a route to the VLAN)",
})
def check(c: Context, inventory: str | None = None, direct: bool = False) -> None:
    """Report the registry's health (/v2/) and its catalog; exit 1 when unhealthy."""
    from runbooks.common.registry import registry_endpoint

    inv = load_inventory_or_exit(c, inventory)
    endpoint = registry_endpoint(inv)
    if endpoint is None:
        raise Exit(f"{inv.path}: no `registry:` section; add `registry: {{host: <gateway "
                   "name>, port: 5001}}`, then run again", code=2)
    host_name, url = endpoint.host, endpoint.url
    health = _direct(url) if direct else _over_ssh(inv, host_name, url)
    print(health.text())
    if not health.healthy:
        raise Exit(f"registry.check: the registry is not healthy; run `inv registry.up` "
                   f"(and see journalctl -u docker-registry on {host_name})", code=1)


def add_to(ns: Collection) -> None:
    """Add registry.up, registry.trust and registry.check to the registry Collection."""
    ns.add_task(up, name="up")
    ns.add_task(trust, name="trust")
    ns.add_task(check, name="check")
