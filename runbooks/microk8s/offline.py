"""Offline install: the pinned snap and assertion (`inv microk8s.fetch`) served from the
gateway's cache, checked by sha256 on each node, then `snap ack` + `snap install
./microk8s_<rev>.snap --classic` (snapd checks the snap against the acknowledged assertion).
No store is needed on the nodes.

`RELEASE` (on the registry host, the gateway) pushes both files once into the site's
registry as blobs of `greenroom/microk8s-snap`, addressed by their pinned sha256 (the
registry refuses any other content), tagged `<track>-<risk>-<revision>`; each node then pulls
what it lacks from there into /var/cache/greenroom/microk8s/ (runbooks.common.artifacts).
Without a registry, or when a node cannot reach it, the files are pushed to the node from
this machine's cache over SSH instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.common.artifacts import Artifact, blob_url, gateway_steps, registry_base
from runbooks.common.microk8s_cluster import Microk8sCluster
from runbooks.core.runner import Runbook
from runbooks.core.steps import Plan, Step, StepFailed
from runbooks.microk8s.fetch import Fetched, FetchError, Lock, cached, fetch, lock_path, names

if TYPE_CHECKING:
    from runbooks.core.context import HostContext
    from runbooks.core.inventory import Inventory

NODE_CACHE = "/var/cache/greenroom/microk8s"
_fetching = threading.Lock()


def pinned_files(inventory: Inventory, cluster: Microk8sCluster, check: bool = False
                 ) -> Fetched:
    """The pinned files of the inventory's channel, from the cache (fetched once from
    `cluster.source` when the cache lacks them, unless `check`: check mode downloads
    nothing); StepFailed when nothing is pinned."""
    with _fetching:
        try:
            lock = Lock.read(lock_path(Path(inventory.path)))
            if cluster.channel not in lock.channels:
                raise StepFailed(f"{lock.path.name} pins no snap for {cluster.channel}: run "
                                 f"`inv microk8s.fetch -i {inventory.path}` (with internet, or "
                                 "cluster.source) and commit the lock")
            have = cached(cluster.channel, lock)
            if have is None and cluster.source and not check:
                have = fetch(cluster.channel, cluster.source, lock)
        except FetchError as exc:
            raise StepFailed(str(exc)) from None
        if have is None:
            raise StepFailed(f"the cache lacks the pinned microk8s files of {cluster.channel}"
                             f"{' (check mode downloads nothing)' if check else ''}: run "
                             "`inv microk8s.fetch` (on a machine with internet, then copy "
                             "~/.cache/greenroom/microk8s/ here)")
        return have


def install_command(revision: str, stamp: str) -> str:
    """`snap ack` the assertion, install the snap file, then `stamp` (a shell command)."""
    snap, assertion = names(revision)
    return (f"set -e; cd {NODE_CACHE}; snap ack ./{assertion}; "
            f"snap install ./{snap} --classic; {stamp}")


REPOSITORY = "greenroom/microk8s-snap"
FILE_TYPE = "application/vnd.greenroom.microk8s.file"


def tag(channel: str, revision: str) -> str:
    """The manifest tag of a pinned snap: 1.32/stable, 7449 -> 1.32-stable-7449."""
    return f"{channel.replace('/', '-')}-{revision}"


def _loader(path: Path) -> Callable[[], Path]:
    return lambda: path


def node_steps(ctx: HostContext, cluster: Microk8sCluster) -> tuple[Fetched, list[Step]]:
    """The pinned snap and assertion on the node, in NODE_CACHE, sha256 checked there: pulled
    from the gateway's registry when the node reaches it there, else pushed from this machine."""
    pinned = pinned_files(ctx.inventory, cluster, ctx.check)
    base = registry_base(ctx.inventory)
    steps: list[Step] = []
    for name, local in sorted(pinned.files.items(), reverse=True):  # the snap first
        digest = pinned.digests[name]
        steps += Artifact(f"{NODE_CACHE}/{name}", _loader(local), digest, mode="644",
                          label=f"{name} ({cluster.channel})",
                          mirror=blob_url(base, REPOSITORY, digest) if base else None).steps()
    return pinned, steps


def gateway_plan(ctx: HostContext) -> Plan:
    """On the registry host (the gateway): the pinned snap and assertion as registry blobs,
    pushed once, tagged by one manifest per channel and revision. Plans nothing without an
    offline microk8s cluster or a registry on this host."""
    from runbooks.common.registry import registry_endpoint

    plan = Plan()
    cluster = getattr(ctx.inventory, "sections", {}).get("cluster")
    found = registry_endpoint(ctx.inventory)
    if not isinstance(cluster, Microk8sCluster) or not cluster.offline or found is None \
            or found.host != ctx.host.name:
        return plan
    pinned = pinned_files(ctx.inventory, cluster, ctx.check)
    files = {name: (pinned.digests[name], _loader(path)) for name, path in pinned.files.items()}
    sizes = {name: path.stat().st_size for name, path in pinned.files.items()}
    plan.add(*gateway_steps(found.url, REPOSITORY, FILE_TYPE, pinned.revision,
                            tag(cluster.channel, pinned.revision), files, sizes, log=ctx.log))
    return plan


RELEASE = Runbook("microk8s.release", ("registry",), gateway_plan)
