"""Make container runtimes pull from the site's plain-HTTP registry: the one writer of each
runtime's registry config, used by registry.trust and by the cluster runbooks.

    plan.add(*trust_steps("k3s", endpoint)); plan.handler(restart_if_installed("k3s"))

- containerd: config.toml's registry `config_path` lists /etc/containerd/certs.d, and
  certs.d/<host:port>/hosts.toml names the registry (both in `common.containerd`);
- k3s: /etc/rancher/k3s/registries.yaml `mirrors` + `configs` entries for the registry;
- microk8s: args/certs.d/<host:port>/hosts.toml (the same hosts.toml as containerd's);
- Docker: /etc/docker/daemon.json `insecure-registries` lists the registry.

Repository paths in the local registry are kept as upstream names them, so every runtime
also gets one mirror entry per upstream registry (docker.io, ghcr.io, quay.io,
registry.k8s.io: `common.registry.mirrored_upstreams()`) pointing at the local registry:
certs.d/<upstream>/hosts.toml for containerd and microk8s, `mirrors.<upstream>` in k3s's
registries.yaml, `registry-mirrors` for Docker (which can mirror Docker Hub only).

Each merger takes a file's current content (None when missing) and returns the wanted one,
keeping every other setting; a file that already says what we need comes back byte for byte
(so a converged node costs no write and no restart). Bad content raises ValueError (the
engine reports it with the file's path) saying what to fix.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runbooks.common.containerd import CERTS_DIR, ContainerdConfig, registry_hosts_steps
from runbooks.common.registry import DOCKER_HUB
from runbooks.core.steps import Edit, Handler, Step, StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

K3S_REGISTRIES = "/etc/rancher/k3s/registries.yaml"
MICROK8S_CERTS_DIR = "/var/snap/microk8s/current/args/certs.d"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
RUNTIMES = ("containerd", "k3s", "microk8s", "docker")
HEADER = "# Written by greenroom (registry trust); other settings are kept on every merge.\n"
JSON_CHECK = "if command -v python3 >/dev/null; then python3 -m json.tool {} >/dev/null; fi"
YAML_CHECK = ("if python3 -c 'import yaml' 2>/dev/null; then python3 -c 'import sys, yaml; "
              "yaml.safe_load(open(sys.argv[1]))' {}; fi")
RESTART_UNITS = {
    "containerd": ("containerd.service",),
    "k3s": ("k3s.service", "k3s-agent.service"),
    "microk8s": ("snap.microk8s.daemon-containerd.service",),
    "docker": ("docker.service",),
}


# -- k3s registries.yaml ---------------------------------------------------------------------

def _mapping(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """parent[key] as a mapping (created when missing or empty); ValueError otherwise."""
    value = parent.get(key)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} is a {type(value).__name__}, expected a mapping")
    parent[key] = value
    return value


def merge_k3s_registries(content: str | None, endpoint: str,
                         upstreams: tuple[str, ...] = ()) -> str:
    """registries.yaml with a mirror for `endpoint` and for each of `upstreams` (each with
    http://endpoint first) and a TLS config that skips verification; other mirrors, configs
    and keys are kept."""
    import yaml

    url = f"http://{endpoint}"
    try:
        data = yaml.safe_load(content or "") or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"it is not valid YAML ({exc}); fix it or move it away, then run "
                         "again") from None
    if not isinstance(data, dict):
        raise ValueError(f"it holds a {type(data).__name__}, expected a mapping with "
                         "`mirrors:` and `configs:`")
    wanted = copy.deepcopy(data)
    mirrors = _mapping(wanted, "mirrors", "`mirrors:`")
    for name in dict.fromkeys((endpoint, *upstreams)):
        mirror = _mapping(mirrors, name, f"mirrors.{name}")
        endpoints = mirror.get("endpoint") or []
        if not isinstance(endpoints, list):
            raise ValueError(f"mirrors.{name}.endpoint is not a list of URLs")
        if url not in endpoints:
            mirror["endpoint"] = [url, *endpoints]
    config = _mapping(_mapping(wanted, "configs", "`configs:`"), endpoint,
                      f"configs.{endpoint}")
    _mapping(config, "tls", f"configs.{endpoint}.tls")["insecure_skip_verify"] = True
    if wanted == data:
        return content or ""
    return HEADER + yaml.safe_dump(wanted, default_flow_style=False, sort_keys=False)


# -- Docker daemon.json ----------------------------------------------------------------------

def merge_daemon_json(content: str | None, endpoint: str, docker_hub: bool = False) -> str:
    """daemon.json whose `insecure-registries` lists `endpoint` and, with `docker_hub`,
    whose `registry-mirrors` lists http://endpoint (Docker mirrors Docker Hub only); other
    keys kept."""
    text = content or ""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"it is not valid JSON ({exc}); fix it or move it away, then run "
                         "again") from None
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, expected an object")
    registries = data.get("insecure-registries", [])
    if not isinstance(registries, list) or not all(isinstance(r, str) for r in registries):
        raise ValueError("`insecure-registries` must be a list of \"host:port\" strings")
    merged = dict(data)
    if endpoint not in registries:
        merged["insecure-registries"] = [*registries, endpoint]
    if docker_hub:
        url = f"http://{endpoint}"
        mirrors = data.get("registry-mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
            raise ValueError("`registry-mirrors` must be a list of URL strings")
        if url not in mirrors:
            merged["registry-mirrors"] = [url, *mirrors]
    if merged == data:
        return text
    return json.dumps(merged, indent=2) + "\n"


def checked(transform: Callable[[str | None], str], parse: Callable[[str], Any]) \
        -> Callable[[str | None], str]:
    """`transform`, with its result parsed locally before it is ever uploaded."""
    def run(current: str | None) -> str:
        wanted = transform(current)
        if wanted != current:
            parse(wanted)
        return wanted
    return run


# -- steps -----------------------------------------------------------------------------------

def _upstreams(upstreams: tuple[str, ...] | None) -> tuple[str, ...]:
    if upstreams is None:
        from runbooks.common.registry import mirrored_upstreams

        return mirrored_upstreams()
    return upstreams


def k3s_registries_step(endpoint: str, notify: tuple[str, ...] = ("restart k3s",),
                        upstreams: tuple[str, ...] | None = None) -> Edit:
    """The step that writes /etc/rancher/k3s/registries.yaml (mode 600: it may hold auth):
    the local registry's entry and one per upstream registry (default: the image lists')."""
    import yaml

    names = _upstreams(upstreams)
    merge = checked(lambda c: merge_k3s_registries(c, endpoint, names), yaml.safe_load)
    return Edit(K3S_REGISTRIES, merge, mode="600", validate=YAML_CHECK, notify=notify)


def daemon_json_step(endpoint: str, notify: tuple[str, ...] = ("restart docker",),
                     upstreams: tuple[str, ...] | None = None) -> Edit:
    """The step that writes /etc/docker/daemon.json's insecure-registries (and its
    registry-mirrors when Docker Hub is one of the upstreams)."""
    hub = DOCKER_HUB in _upstreams(upstreams)
    merge = checked(lambda c: merge_daemon_json(c, endpoint, hub), json.loads)
    return Edit(DOCKER_DAEMON_JSON, merge, validate=JSON_CHECK, notify=notify)


def trust_steps(runtime: str, endpoint: str, upstreams: tuple[str, ...] | None = None) \
        -> list[Step]:
    """The steps that make `runtime` (one of RUNTIMES) pull from `endpoint` over plain HTTP,
    both by the local name and, through one mirror entry each, by every upstream registry's
    name (`upstreams`; default: the image lists' registries); each notifies
    `restart <runtime>` (see `restart_if_installed`)."""
    notify = (f"restart {runtime}",)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    names = _upstreams(upstreams)
    if runtime == "containerd":
        return [ContainerdConfig(kubernetes=False),
                *registry_hosts_steps(CERTS_DIR, endpoint, upstreams=names)]
    if runtime == "k3s":
        return [k3s_registries_step(endpoint, notify, names)]
    if runtime == "microk8s":
        return [*registry_hosts_steps(MICROK8S_CERTS_DIR, endpoint, notify, names)]
    return [daemon_json_step(endpoint, notify, names)]  # docker


def restart_if_installed(runtime: str) -> Handler:
    """Handler `restart <runtime>`: restarts each of its units that exists, else says so."""
    units = RESTART_UNITS[runtime]

    def restart(ctx: HostContext) -> None:
        restarted = []
        for unit in units:
            u = shlex.quote(unit)
            if not ctx.run(f"systemctl cat {u} >/dev/null 2>&1").ok:
                continue
            done = ctx.run(f"systemctl restart {u}")
            if not done.ok:
                raise StepFailed(f"systemctl restart {unit}: exit {done.rc}: "
                                 f"{done.stderr.strip()[-1500:]}; see journalctl -u {unit}")
            restarted.append(unit)
        if not restarted:
            ctx.log(f"restart of {runtime} skipped: no {' or '.join(units)} on this host "
                    "(the config is in place for when it is installed)")

    return Handler(f"restart {runtime}", restart)
