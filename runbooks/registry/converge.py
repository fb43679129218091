"""registry.up and registry.trust: run the site's registry, make the nodes pull through it.

registry.up (hosts with role registry; acts only on the inventory's `registry.host`):
  runtime "package" (default): Debian's docker-registry as a systemd service with our
  /etc/docker/registry/config.yml (filesystem storage in /var/lib/docker-registry, listening
  on the host's VLAN address and the inventory's port, deletes enabled, storage health
  checks), a drop-in that retries until the VLAN address exists, enabled at boot, restarted
  only when its config or drop-in is newer than the running process, then `/v2/` checked with
  curl from the host itself on every run (a no-op run too).
  runtime "docker": a `registry:2` container (--restart=always, -p ADDR:PORT:5000, a named
  volume), recreated only when its settings differ.
registry.trust (roles pi, k3s-server, k3s-agent, microk8s): each runtime found on the node
  (or named with --runtimes) gets its native config, merged by runbooks.common.registry_trust,
  and is restarted once, only when that config changed and only if its unit exists.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runbooks.common.facts import succeeded
from runbooks.common.links import IPV4_ADDRESSES
from runbooks.common.pins import parse_sums
from runbooks.common.registry import required_endpoint
from runbooks.common.registry_trust import RUNTIMES, restart_if_installed, trust_steps
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import (
    Action,
    Change,
    Command,
    Directory,
    File,
    Packages,
    Plan,
    Service,
    Step,
    StepFailed,
)
from runbooks.core.templates import render

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

UNIT = "docker-registry"
CONFIG = "/etc/docker/registry/config.yml"
DROP_IN = f"/etc/systemd/system/{UNIT}.service.d/greenroom.conf"
STORAGE = "/var/lib/docker-registry"
NODE_ROLES = ("pi", "k3s-server", "k3s-agent", "microk8s")
# Which container runtimes a node has (the registry's trust is written for each), by name
RUNTIME_PRESENT: dict[str, Fact[bool]] = {name: Fact(f"runtime {name}", command, succeeded)
                                          for name, command in {
    "containerd": "command -v containerd || [ -d /etc/containerd ]",
    "k3s": "[ -d /etc/rancher/k3s ] || command -v k3s",
    "microk8s": "[ -d /var/snap/microk8s ]",
    # /etc/docker alone is not enough: the docker-registry package creates it too.
    "docker": "[ -e /etc/docker/daemon.json ] || command -v dockerd || command -v docker",
}.items()}


# -- registry.up steps ------------------------------------------------------------------------

class VlanAddress(Step):
    """Ensure the registry's listen address is on the host (dell-gateway puts it there): a
    precondition, reported in check mode and failing a real run while it is missing."""

    def __init__(self, address: str, host: str) -> None:
        self.address, self.host = address, host
        self.name = f"Ensure {address} is on an interface of {host}"

    def facts(self) -> Mapping[str, str]:
        return {"addrs": IPV4_ADDRESSES.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if self.address in {str(a.ip) for _, a in IPV4_ADDRESSES.read(facts, "addrs")}:
            return []
        return [Change(f"{self.address} is not on any interface of {self.host} yet; the "
                       "registry listens on the VLAN address: run `inv dell-gateway` first "
                       "(it configures the VLAN interface and its address), then run "
                       "registry.up again")]


def parse_start_time(text: str) -> float | None:
    """systemd's `ExecMainStartTimestamp` (with --timestamp=us+utc) -> epoch seconds."""
    text = text.strip()
    for layout in ("%a %Y-%m-%d %H:%M:%S.%f UTC", "%a %Y-%m-%d %H:%M:%S UTC"):
        try:
            moment = datetime.strptime(text, layout)
        except ValueError:
            continue
        return moment.replace(tzinfo=UTC).timestamp()
    return None


def wait_healthy(url: str, seconds: int, log_command: str) -> str:
    """Shell that polls `url`/v2/ for up to `seconds`, else prints the log and fails."""
    tries = seconds * 5
    return (f"for i in $(seq {tries}); do curl -fsS --connect-timeout 1 -m 2 -o /dev/null "
            f"{shlex.quote(url)}/v2/ && exit 0; sleep 0.2; done\n"
            f"echo 'no answer from {url}/v2/ after {seconds} s; last log lines:' >&2\n"
            f"{log_command} >&2 || true\nexit 1\n")


def started_fact(unit: str) -> Fact[float | None]:
    """When systemd last started `unit`'s main process (epoch seconds; None: not running)."""
    return Fact(f"{unit} started",
                "systemctl show -p ExecMainStartTimestamp --value --timestamp=us+utc "
                f"{shlex.quote(unit)}", lambda result: parse_start_time(result.out))


def parse_mtimes(text: str) -> dict[str, float]:
    """`stat -c '%.9Y %n' PATH...` -> {path: modification time}."""
    found = {}
    for line in text.splitlines():
        stamp, _, path = line.partition(" ")
        try:
            found[path] = float(stamp)
        except ValueError:
            continue
    return found


def mtimes_fact(paths: Sequence[str]) -> Fact[dict[str, float]]:
    """The files' modification times (the missing ones left out)."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return Fact("mtimes", f"stat -c '%.9Y %n' {quoted}",
                lambda result: parse_mtimes(result.out))


def sums_fact(paths: Sequence[str]) -> Fact[dict[str, str]]:
    """The files' sha256 digests (the missing ones left out)."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return Fact("sha256", f"sha256sum {quoted}", lambda result: parse_sums(result.out))


class RegistryRestarted(Step):
    """Ensure the running registry was started after its config files were last written.

    A step, not a handler, so the health check that follows sees the restarted registry;
    keyed on file times, it restarts only when a file changed, and also catches a restart
    that an interrupted run never did. In check mode it compares contents instead.
    """

    def __init__(self, unit: str, files: Mapping[str, str], url: str) -> None:
        self.unit, self.files, self.url = unit, dict(files), url
        self.name = f"Ensure {unit} runs its current config"

        self.started = started_fact(unit)
        self.mtimes, self.sums = mtimes_fact(list(self.files)), sums_fact(list(self.files))

    def facts(self) -> Mapping[str, str]:
        return {"started": self.started.command, "mtimes": self.mtimes.command,
                "sums": self.sums.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        import hashlib

        sums = self.sums.read(facts, "sums")
        pending = [p for p, text in self.files.items()
                   if sums.get(p) != hashlib.sha256(text.encode()).hexdigest()]
        started = self.started.read(facts, "started")
        newer = [path for path, stamp in self.mtimes.read(facts, "mtimes").items()
                 if started is not None and stamp > started]
        reason = (f"{', '.join(pending)} will change" if pending else
                  f"{', '.join(newer)} changed after it started" if newer else None)
        if reason is None or started is None:
            return []  # not running: the Service step starts it with the current files
        restart = f"systemctl restart {shlex.quote(self.unit)}\n" + wait_healthy(
            self.url, 15, f"journalctl -u {shlex.quote(self.unit)} -n 20 --no-pager")
        return [Change(f"restart {self.unit} ({reason})", (Action(restart),))]


def address_missing(address: str) -> str:
    """Shell that succeeds when `address` is on none of the host's interfaces (and `ip` is
    there to tell): nothing can listen on it yet, so there is nothing to wait for."""
    return (f"command -v ip >/dev/null 2>&1 && ! ip -o addr show | grep -qF "
            f"{shlex.quote(' ' + address + '/')}")


# curl's exit codes that a registry starting up gives: connection refused (7), an empty
# reply (52), a reset connection (56). Others (a timeout: 28, no route, an HTTP error) do not
# get better by waiting a few seconds, so the probe answers at once.
STARTING_CODES = "7|52|56"


def health_probe(url: str, address: str, running: str, tries: int = 12,
                 pause: float = 0.25) -> str:
    """Shell that asks `url`/v2/ once, exit 0 when it answers, else prints why and exits 1.

    It answers at once when `address` is not on the host and when the connection fails in a
    way waiting does not fix (a connect timeout of 1 s: no route, nobody on that address);
    it tries again (`tries` in all, `pause` s apart: ~3 s) only while the connection is
    refused or reset and `running` (a shell test) says the service is running or starting.
    """
    q = shlex.quote
    curl = f"curl -fsS --connect-timeout 1 -m 5 -o /dev/null {q(url + '/v2/')} 2>&1"
    return (f"if {address_missing(address)}; then echo {q(address + ' is not on this host')}; "
            f"exit 1; fi; i=0; while :; do out=$({curl}) && exit 0; rc=$?; i=$((i+1)); "
            f"case $rc in {STARTING_CODES}) if [ $i -lt {tries} ] && {{ {running}; }} "
            f">/dev/null 2>&1; then sleep {pause}; continue; fi;; esac; "
            'echo "${out:-curl exit $rc}"; exit 1; done')


def unit_running(unit: str) -> str:
    """Shell test: systemd's `unit` is active, starting or restarting."""
    return (f"systemctl show -p ActiveState --value {shlex.quote(unit)} "
            "| grep -qxE 'active|activating|reloading'")


def container_running(name: str) -> str:
    """Shell test: the container `name` is running or restarting."""
    return (f"docker inspect -f '{{{{.State.Status}}}}' {shlex.quote(name)} "
            "| grep -qxE 'running|restarting'")


def health_fact(url: str, address: str, running: str) -> Fact[str | None]:
    """`health_probe` as a fact: None when `url`/v2/ answers, else why it does not."""
    return Fact(f"{url}/v2/ answers", health_probe(url, address, running),
                lambda result: None if result.ok else (result.out.strip()
                                                       or f"curl exit {result.rc}"))


LOG_MARK = "@@greenroom-registry-log"


def health_and_log(probe: str, log_command: str) -> str:
    """Shell: `probe` (a `health_probe`); only when it fails, LOG_MARK and the last 20 lines
    `log_command` prints (its errors included), exit 1. A healthy registry's check starts
    no log reader (journalctl reads the journal's files: the costliest command of a
    converged gateway's check)."""
    return (f"( {probe}\n) || {{ echo {LOG_MARK}; {log_command} 2>&1 | tail -n 20; "
            "exit 1; }")


def parse_health_and_log(result: FactResult) -> tuple[str | None, str]:
    """(None when the registry answered, else why not; the log lines, when it did not)."""
    if result.ok:
        return None, ""
    why, _mark, log = result.out.partition(LOG_MARK + "\n")
    return why.strip() or f"curl exit {result.rc}", log.strip()


class RegistryHealthy(Step):
    """Ensure the registry answers `GET /v2/`, asked from the registry host itself: a
    precondition (the steps before it start the registry), reported in check mode and
    failing a real run, with the last log lines, when it does not answer. The probe waits
    (up to ~3 s) only for a registry that is starting: see `health_probe`."""

    def __init__(self, url: str, log_command: str, address: str = "",
                 running: str = "true") -> None:
        self.url, self.log_command, self.running = url, log_command, running
        self.address = address or url.split("://", 1)[-1].rsplit(":", 1)[0]
        self.name = f"Ensure {url}/v2/ answers"
        self.health = health_fact(url, self.address, running)

    def facts(self) -> Mapping[str, str]:
        return {"health": health_and_log(self.health.command, self.log_command)}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        why, log = parse_health_and_log(facts["health"])
        if why is None:
            return []
        return [Change(f"the registry does not answer on {self.url}/v2/ yet ({why})",
                       diff=(f"last log lines:\n{log}\n" if log else "")
                       + "(a real run starts it first; if it still does not answer, fix the "
                         "cause shown and run registry.up again)")]


@dataclass(frozen=True)
class ContainerSpec:
    """A registry:2 container as the seed ran it, with a named volume for persistence."""

    address: str
    port: int
    name: str = "greenroom-registry"
    image: str = "registry:2"
    volume: str = "greenroom-registry"

    def run_command(self) -> str:
        q = shlex.quote
        return (f"docker run -d --name {q(self.name)} --restart=always "
                f"-p {q(f'{self.address}:{self.port}:5000')} "
                f"-v {q(self.volume + ':/var/lib/registry')} "
                f"-e REGISTRY_STORAGE_DELETE_ENABLED=true {q(self.image)}")


def container_differences(info: Mapping[str, Any], spec: ContainerSpec) -> list[str]:
    """What differs between `docker inspect`'s object and `spec` (empty: as wanted)."""
    diffs = []
    image = info.get("Config", {}).get("Image")
    if image != spec.image:
        diffs.append(f"image {image} (want {spec.image})")
    policy = info.get("HostConfig", {}).get("RestartPolicy", {}).get("Name")
    if policy != "always":
        diffs.append(f"restart policy {policy or 'none'} (want always)")
    bindings = info.get("HostConfig", {}).get("PortBindings") or {}
    published = {(b.get("HostIp"), b.get("HostPort")) for b in bindings.get("5000/tcp") or []}
    if published != {(spec.address, str(spec.port))}:
        shown = ", ".join(f"{ip or '*'}:{port}" for ip, port in sorted(published)) or "none"
        diffs.append(f"port 5000 published on {shown} (want {spec.address}:{spec.port})")
    mounts = {(m.get("Name"), m.get("Destination")) for m in info.get("Mounts") or []}
    if (spec.volume, "/var/lib/registry") not in mounts:
        diffs.append(f"volume {spec.volume} not on /var/lib/registry")
    if "REGISTRY_STORAGE_DELETE_ENABLED=true" not in (info.get("Config", {}).get("Env") or []):
        diffs.append("deletes not enabled")
    return diffs


# the docker command is installed
DOCKER_CLI: Fact[bool] = Fact("docker command", "command -v docker", succeeded)


def parse_inspect(result: FactResult, name: str) -> dict[str, Any] | None:
    """`docker inspect --type container NAME` -> its object; None: no such container.
    StepFailed when docker answers something that is not an inspect object."""
    if not result.ok:
        return None
    try:
        info = json.loads(result.out)[0]
    except (ValueError, IndexError, KeyError) as exc:
        raise StepFailed(f"cannot read `docker inspect {name}`: {exc}") from None
    if not isinstance(info, dict):
        raise StepFailed(f"cannot read `docker inspect {name}`: not an object")
    return info


def container_fact(name: str) -> Fact[dict[str, Any] | None]:
    """The container `name` as `docker inspect` shows it (None: there is none)."""
    return Fact(f"container {name}", f"docker inspect --type container {shlex.quote(name)}",
                lambda result: parse_inspect(result, name))


class RegistryContainer(Step):
    """Ensure the registry:2 container runs as `spec` says (runtime docker)."""

    def __init__(self, spec: ContainerSpec) -> None:
        self.spec = spec
        self.name = f"Ensure container {spec.name} ({spec.image}) on {spec.address}:{spec.port}"

    def facts(self) -> Mapping[str, str]:
        return {"docker": DOCKER_CLI.command,
                "inspect": container_fact(self.spec.name).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if not DOCKER_CLI.read(facts, "docker"):
            raise StepFailed("registry.runtime is docker but there is no docker command on "
                             "this host: install Docker (apt-get install docker.io), or set "
                             "registry.runtime: package in the inventory")
        run = self.spec.run_command()
        info = container_fact(self.spec.name).read(facts, "inspect")
        if info is None:
            return [Change(f"create container {self.spec.name}", (Action(run),))]
        diffs = container_differences(info, self.spec)
        if diffs:
            recreate = f"docker rm -f {shlex.quote(self.spec.name)} && {run}"
            return [Change(f"recreate {self.spec.name}: {'; '.join(diffs)} (the volume is "
                           "kept)", (Action(recreate),))]
        if not info.get("State", {}).get("Running"):
            return [Change(f"start {self.spec.name}",
                           (Action(f"docker start {shlex.quote(self.spec.name)}"),))]
        return []


# -- registry.up -----------------------------------------------------------------------------

def up_plan(ctx: HostContext) -> Plan:
    """The registry host's steps for the inventory's runtime."""
    endpoint = required_endpoint(ctx.inventory)
    name, address, port = endpoint.host, endpoint.address, endpoint.port
    if ctx.host.name != name:
        ctx.log(f"not the registry host (registry.host is {name}); nothing to do")
        return Plan()
    url = f"http://{address}:{port}"
    runtime = ctx.inventory.registry.runtime if ctx.inventory.registry else "package"
    plan = Plan().add(VlanAddress(address, ctx.host.name))
    if runtime == "docker":
        ctx.log("runtime docker: a registry:2 container (needs a Docker engine on the host)")
        spec = ContainerSpec(address=address, port=port)
        return plan.add(RegistryContainer(spec),
                        RegistryHealthy(url, f"docker logs --tail 20 {spec.name}",
                                       address, container_running(spec.name)))
    config = render("registry/config.yml.j2", address=address, port=port,
                    rootdirectory=STORAGE)
    drop_in = render("registry/docker-registry.override.conf.j2")
    plan.add(
        Packages([UNIT, "curl"]),
        Directory(STORAGE, mode="755", owner=UNIT, group=UNIT),
        # the package owns only the top directory: a tree restored (or seeded) as root, or
        # from a machine where the user had another uid, reads fine but refuses every push
        # (HTTP 500, no upload location)
        Command(f"Ensure {UNIT} owns everything in {STORAGE}",
                f"chown -R {UNIT}:{UNIT} {STORAGE}", only_if=not_owned_by(STORAGE, UNIT)),
        File(CONFIG, config, mode="644"),
        File(DROP_IN, drop_in, mode="644"),
        Command(f"Ensure systemd has read {UNIT}'s drop-in", "systemctl daemon-reload",
                # a new drop-in dir is not always flagged by NeedDaemonReload: check both
                only_if=f"! systemctl show -p DropInPaths --value {UNIT} | grep -qF {DROP_IN} "
                        f"|| systemctl show -p NeedDaemonReload --value {UNIT} | grep -qx yes"),
        Service(UNIT, enabled=True, running=True),
        RegistryRestarted(UNIT, {CONFIG: config, DROP_IN: drop_in}, url),
        RegistryHealthy(url, f"journalctl -u {UNIT} -n 20 --no-pager", address,
                        unit_running(UNIT)),
    )
    return plan


def not_owned_by(path: str, user: str) -> str:
    """A shell test: exits 0 when anything under `path` is not owned by `user` and its
    group (exits non-zero when all is, and when the user or the path does not exist)."""
    q = shlex.quote
    return (f"find {q(path)} \\( ! -user {q(user)} -o ! -group {q(user)} \\) -print -quit "
            "2>/dev/null | grep -q .")


# -- registry.trust --------------------------------------------------------------------------

def chosen_runtimes(ctx: HostContext, option: str | None) -> list[str]:
    """Runtimes to configure: named with --runtimes, else detected on the host."""
    text = (option or "auto").strip()
    if text != "auto":
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in RUNTIMES]
        if unknown or not names:
            raise StepFailed(f"--runtimes {text!r}: unknown {', '.join(unknown) or 'list'}; "
                             f"use auto or a comma list of {', '.join(RUNTIMES)}")
        return names
    found = ctx.gather({name: fact.command for name, fact in RUNTIME_PRESENT.items()})
    names = [n for n in RUNTIMES if RUNTIME_PRESENT[n].read(found, n)]
    if "k3s" not in names and any(r.startswith("k3s-") for r in ctx.host.roles):
        names.insert(1 if "containerd" in names else 0, "k3s")
    return names


def trust_upstreams(images: str | None) -> tuple[str, ...] | None:
    """The upstream registries that get a mirror entry on the nodes: None (the default of
    `common.registry.mirrored_upstreams()`: every registry of files/registry's lists)
    without `images`; with it (--images, a user's own list for load-images), those plus
    every registry that list and the `images.d/` beside it name. StepFailed naming the file
    and entry when the list is unreadable, or two of its images would land on one local
    name."""
    if not images:
        return None
    from pathlib import Path

    from runbooks.common.registry import mirrored_upstreams

    from .images import ImageListError, load_image_list

    try:
        listed = load_image_list(images)
    except ImageListError as exc:
        raise StepFailed(f"--images: {exc}; fix the list, then run again") from None
    own = {spec.source.host for spec in listed.images}        # as load-images reads them
    return tuple(sorted({*mirrored_upstreams(), *mirrored_upstreams(Path(images)), *own}))


def trust_plan(ctx: HostContext) -> Plan:
    """Each runtime on the node pulls from the registry at its VLAN address."""
    endpoint = str(required_endpoint(ctx.inventory))
    upstreams = trust_upstreams(ctx.options.get("images"))
    runtimes = chosen_runtimes(ctx, ctx.options.get("runtimes"))
    plan = Plan()
    if not runtimes:
        ctx.log("no container runtime found (containerd, k3s, microk8s, docker): nothing to "
                "trust yet; run pi-prep first, or name one with --runtimes")
        return plan
    ctx.log(f"runtimes: {', '.join(runtimes)}; registry {endpoint}")
    if upstreams is not None:
        ctx.log(f"mirror entries for: {', '.join(upstreams)}")
    for runtime in runtimes:
        plan.add(*trust_steps(runtime, endpoint, upstreams))
        plan.handler(restart_if_installed(runtime))
    return plan


UP = Runbook("registry.up", ("registry",), up_plan)
TRUST = Runbook("registry.trust", NODE_ROLES, trust_plan)
RUNBOOKS = [UP, TRUST]
