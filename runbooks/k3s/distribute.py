"""The release files served to the boards from the gateway: pushed there once, pulled on the LAN.

The site's registry (on the gateway, `registry:` in the inventory) is a content-addressed
store already: greenroom pushes each pinned file (binary, airgap images) into it as a blob of
repository `greenroom/k3s-release`, addressed by the sha256 the lock pins, and tags an OCI
manifest listing them per version and architecture (so a registry garbage collection keeps
them). The registry checks the digest on upload; each board then downloads the file from
``http://<registry>/v2/greenroom/k3s-release/blobs/sha256:<digest>`` at LAN speed, without
any upstream, and checks the sha256 again itself before the file replaces anything.

Without a registry, or when the board cannot reach it (no curl, registry down), the file is
pushed straight to the board over its SSH session, as before: the fallback is decided per file
from the board's own facts, so a converged board costs nothing extra. The mechanics (blobs,
manifest, pull or push on the node) are runbooks.common.artifacts', shared with microk8s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbooks.common import artifacts
from runbooks.core.runner import Runbook
from runbooks.core.steps import Plan, StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

REPOSITORY = "greenroom/k3s-release"
FILE_TYPE = "application/vnd.greenroom.k3s.file"


def blob_url(base: str, digest: str) -> str:
    """Where the registry at `base` (http://host:port) serves the release blob `digest`."""
    return artifacts.blob_url(base, REPOSITORY, digest)


def tag(version: str, arch: str) -> str:
    """The manifest tag of one version/arch: v1.34.3+k3s1, arm64 -> v1.34.3-k3s1-arm64."""
    return f"{version.replace('+', '-')}-{arch}"


def gateway_plan(ctx: HostContext) -> Plan:
    """On the registry host: every pinned release file the nodes need, as registry blobs."""
    from runbooks.common.kube_cluster import Cluster
    from runbooks.k3s.release import (
        binary_name,
        cache_dir,
        cached_loader,
        images_name,
        release_lock,
    )

    plan = Plan()
    cluster: Cluster | None = getattr(ctx.inventory, "sections", {}).get("cluster")
    base = artifacts.registry_base(ctx.inventory)
    registry = getattr(ctx.inventory, "registry", None)
    if cluster is None or getattr(cluster, "distribution", None) != "k3s" or base is None or \
            registry is None or registry.host != ctx.host.name:
        return plan
    lock = ctx.options.get("lock") or release_lock(ctx.inventory, cluster)
    for index, arch in enumerate(cluster.arches):
        files, sizes = {}, {}
        for name in (binary_name(arch), images_name(arch, cluster.images)):
            digest = lock.digest(cluster.version, name)
            if digest is None:
                raise StepFailed(f"{lock.path.name} pins no {name} for {cluster.version}: run "
                                 "`inv k3s.fetch`")
            files[name] = (digest, cached_loader(cluster.version, name, lock))
            sizes[name] = (cache_dir(cluster.version) / name).stat().st_size
        plan.add(*artifacts.gateway_steps(base, REPOSITORY, FILE_TYPE, cluster.version,
                                          tag(cluster.version, arch), files, sizes,
                                          log=ctx.log, config=index == 0))
    return plan


RUNBOOK = Runbook("k3s.release", ("registry",), gateway_plan)
