"""k3s: an air-gapped, checksum-verified k3s cluster on the boards; kubeconfig on this machine.

`inv k3s.fetch` pins and caches the release files, `inv k3s` installs and converges the
cluster, `inv k3s.check` reads its health, `inv k3s.reset` removes it without debris.
"""

from __future__ import annotations

from typing import Any

from invoke import Collection, Context, Exit

from runbooks.core.cli import (
    COMMON_HELP,
    load_inventory_or_exit,
    parallel_or_exit,
    runbook_task,
    settings,
    task,
)

FETCH_HELP = {
    "inventory": COMMON_HELP["inventory"],
    "check": "Only say which pinned files are missing from the cache; download nothing.",
    "source": "Release download base URL (a mirror); default cluster.source, else "
              "greenroom.k3s.source in invoke.yaml.",
}


def _cluster(inv: Any) -> Any:
    cluster = getattr(inv, "sections", {}).get("cluster")
    if cluster is None:
        raise Exit(f"{inv.path}: no `cluster:` section (and no host with role k3s-server); "
                   "add cluster: {version: v1.34.1+k3s1} and the roles", code=2)
    return cluster


def _source(c: Context, cluster: Any, given: str | None) -> str | None:
    return given or cluster.source or (settings(c).get("k3s") or {}).get("source")


def ensure_release(c: Context, inv: Any, source: str | None, check: bool) -> Any:
    """The lock after making sure the cache holds every pinned file (fetching what lacks)."""
    from runbooks.k3s.release import Lock, ReleaseError, fetch, lock_path

    cluster = _cluster(inv)
    try:
        lock = Lock.read(lock_path(inv.path))
        before = {v: dict(a) for v, a in lock.versions.items()}
        report = fetch(cluster.version, cluster.arches, cluster.images,
                       _source(c, cluster, source), lock, check=check)
        if lock.versions != before:
            lock.write()
            print(f"pinned in {lock.path}: commit it with the inventory")
    except ReleaseError as exc:
        raise Exit(f"k3s: {exc}", code=1) from None
    return lock, report


@task(help=FETCH_HELP)
def fetch(c: Context, inventory: str | None = None, check: bool = False,
          source: str | None = None) -> None:
    """Download the pinned k3s release for every architecture the nodes have, verified.

    Binary, airgap images and sha256sum-<arch>.txt per architecture, each file checked
    against the release's checksum file and against the lock (<inventory>.k3s.lock, commit
    it), kept in ~/.cache/greenroom/k3s/<version>/. Nothing is ever run or piped to a shell.
    """
    from runbooks.k3s.release import cache_dir

    inv = load_inventory_or_exit(c, inventory)
    cluster = _cluster(inv)
    _, report = ensure_release(c, inv, source, check)
    where = cache_dir(cluster.version)
    for name in report.cached:
        print(f"ok       {name} (cached, matches the lock)")
    for name in report.fetched:
        print(f"fetched  {name}")
    for name in report.missing:
        print(f"MISSING  {name}")
    print(f"{cluster.version} for {', '.join(cluster.arches)} in {where}")
    if report.missing:
        raise Exit(f"{len(report.missing)} file(s) missing: run `inv k3s.fetch` where the "
                   "release site is reachable", code=1)


@task(help={**COMMON_HELP,
            "timeout": "Seconds to wait for every node to be Ready (default 180).",
            "kubeconfig": "Kubeconfig file to merge the cluster's context into (default "
                          "$KUBECONFIG, else ~/.kube/config).",
            "no_kubeconfig": "Do not touch any kubeconfig on this machine.",
            "source": FETCH_HELP["source"]},
      default=True)
def converge(c: Context, inventory: str | None = None, host: str | None = None,
             check: bool = False, parallel: int = 0, report: str | None = None,
             accept_new_host_keys: bool = False, timeout: int = 180,
             kubeconfig: str | None = None, no_kubeconfig: bool = False,
             source: str | None = None) -> None:
    """Install and converge k3s on the nodes (roles k3s-server, k3s-agent), offline.

    The pinned binary and airgap images from the local cache (fetched first when missing),
    pushed once into the gateway's registry and pulled from there by the boards (else pushed
    to each), verified on every node; config.yaml, registries.yaml, kube-vip with a VIP, units and
    0600 env files; the first server's token handed to the others; every node Ready; the
    kubeconfig renamed to the site and merged. Restarts only nodes whose files changed.
    """
    from runbooks.common.kubeconfig import kubeconfig_path
    from runbooks.core.runner import select_hosts, write_report
    from runbooks.k3s.distribute import RUNBOOK as GATEWAY
    from runbooks.k3s.plan import FIRST_READY, NODES, READY, TOGETHER, WHOLE, rollout_order
    from runbooks.k3s.run import converged_already, run_phases

    inv = load_inventory_or_exit(c, inventory)
    cluster = _cluster(inv)
    lock, pending = ensure_release(c, inv, source, check=check)
    if pending.missing:
        raise Exit(f"k3s --check: {', '.join(pending.missing)} not in the cache yet; check "
                   "mode downloads nothing: run `inv k3s.fetch` first", code=1)
    try:
        chosen = select_hosts(inv, NODES, host)
    except Exception as exc:  # noqa: BLE001 - UsageError / InventoryError: bad input
        raise Exit(f"{inv.path}: {exc}", code=2) from None
    first = inv.hosts[cluster.first_server]
    others = [h for h in chosen if h.name != first.name]
    failed: dict[str, str] = {}
    options = {"lock": lock, "shared": {"failed": failed}, "timeout": timeout,
               "kubeconfig_path": None if no_kubeconfig else kubeconfig_path(kubeconfig)}

    def next_phases(so_far: Any) -> list[Any]:
        options["run_so_far"] = so_far  # the readiness wait skips nodes that failed in it
        first_result = so_far.hosts.get(first.name)
        upgrading = first_result is not None and upgraded(first_result)
        if not upgrading:  # the first server waits for the others while they converge
            return [(TOGETHER, [*others, first], 0)]
        order = rollout_order(cluster, [first.name, *(h.name for h in others)])
        print(f"upgrade to {cluster.version}: one node at a time, each Ready before the next:"
              f" {' -> '.join(order)}")
        options["upgrade"] = True
        # the first server restarted in the first phase: Ready on the new version before
        # the next node stops (its own restart only waited for the unit to start)
        return [(FIRST_READY, [first], 0), *[(NODES, [inv.hosts[n]], 1) for n in order[1:]],
                (READY, [first], 0)]

    registry = getattr(inv, "registry", None)
    gateway = [inv.hosts[registry.host]] if registry and registry.host in inv.hosts else []
    workers = parallel_or_exit(c, parallel)
    if not check:  # a converged cluster: one round, every host read at once
        done = converged_already(
            WHOLE, list({h.name: h for h in [*gateway, first, *others]}.values()), inv,
            name="k3s",
            parallel=workers, options={k: v for k, v in options.items() if k != "shared"},
            accept_new_host_keys=accept_new_host_keys)
        if done is not None:
            if report:
                write_report(done, report)
            return
    result = run_phases([(GATEWAY, gateway, 0), (NODES, [first], 0)], inv, name="k3s",
                        check=check, parallel=workers,
                        options=options, accept_new_host_keys=accept_new_host_keys,
                        needs_first=first.name, then=next_phases, warm=others,
                        on_result=lambda done: failed.update(
                            {done.host: done.error or done.status}
                            if done.status in ("failed", "unreachable") else {}))
    if report:
        write_report(result, report)
    if not result.ok:
        raise Exit(code=1)


def upgraded(result: Any) -> bool:
    """True when a node's run replaced an existing k3s binary (a version change)."""
    from runbooks.k3s.config import BINARY

    return any(step.status == "changed" and step.name.startswith(f"Ensure {BINARY} ")
               and any(change.startswith("replace") for change in step.changes)
               for step in result.steps)


ns = Collection("k3s")
ns.add_task(converge, default=True)
ns.add_task(fetch)


@task(help={**COMMON_HELP,
            "keep_images": "Keep the airgap images (/var/lib/rancher/k3s/agent/images) so a "
                           "re-install is fast.",
            "kubeconfig": "Kubeconfig file to remove the site's context from (default "
                          "$KUBECONFIG, else ~/.kube/config).",
            "no_kubeconfig": "Do not touch any kubeconfig on this machine."})
def reset(c: Context, inventory: str | None = None, host: str | None = None,
          check: bool = False, parallel: int = 0, report: str | None = None,
          accept_new_host_keys: bool = False, keep_images: bool = False,
          kubeconfig: str | None = None, no_kubeconfig: bool = False) -> None:
    """Remove k3s from the nodes, agents first, servers last, leaving nothing behind.

    Units, processes, interfaces (cni0, flannel.1, ...), cni-* namespaces, KUBE-/CNI-/flannel
    iptables rules (nobody else's), kube-proxy/flannel nftables tables, mounts, files, binary;
    then the site's context in the kubeconfig. `--check` lists what would go.
    """
    from runbooks.common.kubeconfig import forget_site
    from runbooks.core.runner import select_hosts, write_report
    from runbooks.k3s.reset import RESET
    from runbooks.k3s.run import run_phases

    inv = load_inventory_or_exit(c, inventory)
    cluster = _cluster(inv)
    try:
        chosen = select_hosts(inv, RESET, host)
    except Exception as exc:  # noqa: BLE001 - UsageError / InventoryError: bad input
        raise Exit(f"{inv.path}: {exc}", code=2) from None
    names = {h.name for h in chosen}
    agents = [h for h in chosen if h.name in cluster.agents]
    servers = [h for h in chosen if h.name in cluster.servers]
    phases = [(RESET, agents, 0),
              (RESET, [h for h in servers if h.name != cluster.first_server], 0),
              (RESET, [h for h in servers if h.name == cluster.first_server], 0)]
    result = run_phases(phases, inv, name="k3s.reset", check=check,
                        parallel=parallel_or_exit(c, parallel),
                        options={"keep_images": keep_images},
                        accept_new_host_keys=accept_new_host_keys)
    if report:
        write_report(result, report)
    if cluster.first_server in names and not no_kubeconfig:
        try:
            done = forget_site(kubeconfig, inv.site, check)
        except ValueError as exc:
            raise Exit(str(exc), code=1) from None
        if done:
            print(done)
    if not result.ok:
        raise Exit(code=1)


ns.add_task(reset)


check = runbook_task(
    "runbooks.k3s.check:CHECK",
    """Read-only health of the cluster; exits 1 when anything is unhealthy.

    Every node: the pinned version, its unit active, images pulled through the site's
    registry. The first server: every node Ready, system pods running, the disabled
    components (traefik, servicelb by default) really absent.
    """,
    name="check",
)
ns.add_task(check)
