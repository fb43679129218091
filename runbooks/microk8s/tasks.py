"""microk8s: a high-availability microk8s cluster from one launch configuration, held
against surprise snap refreshes; kubeconfig on this machine.

`inv microk8s` converges the nodes (role microk8s, the first is the seed node),
`inv microk8s.check` reads their health, `inv microk8s.reset` removes microk8s,
`inv microk8s.fetch` pins and caches the snap for an offline install.
"""

from __future__ import annotations

from invoke import Collection, Context, Exit

from runbooks.core.cli import COMMON_HELP, execute, load_inventory_or_exit, runbook_task, task

KUBECONFIG_HELP = ("Kubeconfig file for the site's context (default $KUBECONFIG, else "
                   "~/.kube/config).")
NO_KUBECONFIG_HELP = "Do not touch any kubeconfig on this machine."


@task(help={**COMMON_HELP,
            "timeout": "Seconds `microk8s status --wait-ready` may wait on a node (default "
                       "120).",
            "kubeconfig": KUBECONFIG_HELP, "no_kubeconfig": NO_KUBECONFIG_HELP},
      default=True)
def converge(c: Context, inventory: str | None = None, host: str | None = None,
             check: bool = False, parallel: int = 0, report: str | None = None,
             accept_new_host_keys: bool = False, timeout: int = 120,
             kubeconfig: str | None = None, no_kubeconfig: bool = False) -> None:
    """Install and converge microk8s on the nodes (role microk8s), joined into one cluster.

    The launch configuration (addons, kubelet and API server args, the site's registry)
    written before the snap is installed (or applied with `snap set`), the snap held against
    refreshes, the login user in group microk8s, each node ready, the other nodes joined to
    the seed with a fresh single-use token each (never shown; a half-joined node is removed
    and joined again), missing addons enabled, the kubeconfig merged as the site's context.
    With offline: true the pinned snap is pushed once into the gateway's registry and each
    node pulls it from there (else it is pushed to each node over SSH).
    A second run changes nothing. Example: inv microk8s -i hosts/lab-microk8s.yaml
    """
    from runbooks.common.kubeconfig import kubeconfig_path

    gateway_ok = _gateway_first(c, inventory, check, accept_new_host_keys)
    execute(c, _runbook("RUNBOOK"), inventory, host, check, parallel, report,
            accept_new_host_keys,
            options={"timeout": timeout,
                     "kubeconfig_path": None if no_kubeconfig else kubeconfig_path(kubeconfig)})
    if not gateway_ok:
        raise Exit("microk8s: microk8s.release failed on the registry host (see above): the "
                   "nodes that lacked the snap got it over SSH instead, if they could", code=1)


def _gateway_first(c: Context, inventory: str | None, check: bool,
                   accept_new_host_keys: bool) -> bool:
    """With `offline: true` and a registry: the pinned snap and assertion pushed once into
    the gateway's registry (microk8s.release), before the nodes pull them from there. False
    when that failed (the nodes then fall back to a push over SSH)."""
    from runbooks.core.runner import run_runbook
    from runbooks.microk8s.offline import RELEASE

    inv = load_inventory_or_exit(c, inventory)
    cluster = getattr(inv, "sections", {}).get("cluster")
    registry = getattr(inv, "registry", None)
    if not getattr(cluster, "offline", False) or registry is None or \
            registry.host not in inv.hosts:
        return True
    return bool(run_runbook(RELEASE, inv, [inv.hosts[registry.host]], check=check,
                            accept_new_host_keys=accept_new_host_keys).ok)


@task(help={**COMMON_HELP, "kubeconfig": KUBECONFIG_HELP, "no_kubeconfig": NO_KUBECONFIG_HELP})
def reset(c: Context, inventory: str | None = None, host: str | None = None,
          check: bool = False, parallel: int = 0, report: str | None = None,
          accept_new_host_keys: bool = False, kubeconfig: str | None = None,
          no_kubeconfig: bool = False) -> None:
    """Remove microk8s from the nodes (snap removed with its data, launch configuration
    gone: a clean node for a fresh install) and the site's context from the kubeconfig.
    `--check` lists what would go. Example: inv microk8s.reset --check
    """
    from runbooks.common.kubeconfig import forget_site

    inv = load_inventory_or_exit(c, inventory)
    failed = None
    try:
        execute(c, _runbook("RESET"), inventory, host, check, parallel, report,
                accept_new_host_keys, options={})
    except Exit as exc:
        failed = exc
    if not no_kubeconfig and host is None:
        try:
            done = forget_site(kubeconfig, inv.site, check)
        except ValueError as exc:
            raise Exit(str(exc), code=1) from None
        if done:
            print(done)
    if failed is not None:
        raise failed


@task(help={"inventory": "Inventory file (default: invoke.yaml's greenroom.inventory).",
            "update": "Re-pin the channel to the revision it offers now (after reading the "
                      "release notes); without it a channel that moved on is refused.",
            "check": "Only say whether the cache holds the pinned files; download nothing."})
def fetch(c: Context, inventory: str | None = None, update: bool = False,
          check: bool = False) -> None:
    """Download the channel's microk8s snap and assertion, pin them, keep them in the cache.

    From cluster.source (a mirror of `snap download` results) or else `snap download
    microk8s --channel=<channel>` on this machine (needs snapd and internet). The snap is
    checked against its assertion's SHA3-384 and both files against
    <inventory>.microk8s.lock (the first fetch pins them: commit the lock). The offline
    install (cluster.offline: true) serves them to the nodes from the gateway's registry (or
    pushes them from this cache).
    Example: inv microk8s.fetch -i hosts/lab-microk8s.yaml
    """
    from pathlib import Path

    from runbooks.core.steps import StepFailed
    from runbooks.microk8s import fetch as fetching
    from runbooks.microk8s.plan import cluster_of

    inv = load_inventory_or_exit(c, inventory)
    try:
        cluster = cluster_of(inv)
    except StepFailed as exc:
        raise Exit(str(exc), code=2) from None
    try:
        lock = fetching.Lock.read(fetching.lock_path(Path(inv.path)))
        if check:
            have = fetching.cached(cluster.channel, lock)
            if have is None:
                raise Exit(f"microk8s {cluster.channel}: the cache lacks the pinned files "
                           f"(or {lock.path.name} pins none): run `inv microk8s.fetch`", code=1)
            got = have
        else:
            got = fetching.fetch(cluster.channel, cluster.source, lock, update=update)
    except fetching.FetchError as exc:
        raise Exit(f"microk8s.fetch: {exc}", code=1) from None
    words = {"cached": "already cached, matches the lock",
             "downloaded": "downloaded, matches the lock",
             "pinned": f"downloaded and pinned in {lock.path} (commit the lock)"}
    print(f"microk8s {cluster.channel} revision {got.revision}: {words[got.how]}")
    for name, path in sorted(got.files.items()):
        print(f"  {path}  sha256 {got.digests[name]}")


def _runbook(name: str):  # noqa: ANN202 - a Runbook, imported when run
    from runbooks.microk8s import plan

    return getattr(plan, name)


check = runbook_task(
    "runbooks.microk8s.plan:CHECK",
    """Read-only health of the microk8s cluster; exits 1 when anything is unhealthy.

    Every node: the snap installed and held, `status --wait-ready` within the timeout. The
    seed node: every node Ready, every addon of the inventory enabled.
    Example: inv microk8s.check -i hosts/lab-microk8s.yaml
    """,
    name="check",
    extra={"timeout": (30, "Seconds `microk8s status --wait-ready` may wait (default 30).")},
)

ns = Collection("microk8s")
ns.add_task(converge)
ns.add_task(reset)
ns.add_task(check)
ns.add_task(fetch)
