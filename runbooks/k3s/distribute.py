"""The release files served to the boards from the gateway: pushed there once, pulled on the LAN.

The site's registry (on the gateway, `registry:` in the inventory) is a content-addressed
store already: greenroom pushes each pinned file (binary, airgap images) into it as a blob of
repository `greenroom/k3s-release`, addressed by the sha256 the lock pins, and tags an OCI
manifest listing them per version and architecture (so a registry garbage collection keeps
them). The registry checks the digest on upload; each board then downloads the file from
``http://<registry>/v2/greenroom/k3s-release/blobs/sha256:<digest>`` at LAN speed, without
any upstream, and checks the sha256 again itself before the file replaces anything
(runbooks.k3s.steps.upload_command / download_command).

Without a registry, or when the board cannot reach it (no curl, registry down), the file is
pushed straight to the board over its SSH session, as before: the fallback is decided per file
from the board's own facts, so a converged board costs nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Action, Change, Plan, Step, StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

REPOSITORY = "greenroom/k3s-release"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
FILE_TYPE = "application/vnd.greenroom.k3s.file"
EMPTY = b"{}"
EMPTY_DIGEST = hashlib.sha256(EMPTY).hexdigest()


def blob_url(base: str, digest: str) -> str:
    """Where the registry at `base` (http://host:port) serves the blob `digest` (hex)."""
    return f"{base}/v2/{REPOSITORY}/blobs/sha256:{digest}"


def tag(version: str, arch: str) -> str:
    """The manifest tag of one version/arch: v1.34.3+k3s1, arm64 -> v1.34.3-k3s1-arm64."""
    return f"{version.replace('+', '-')}-{arch}"


def manifest(files: Mapping[str, tuple[str, int]], version: str) -> bytes:
    """An OCI manifest whose layers are the release files {name: (sha256, size)}."""
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": FILE_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": f"sha256:{EMPTY_DIGEST}",
                   "size": len(EMPTY)},
        "layers": [{"mediaType": FILE_TYPE, "digest": f"sha256:{digest}", "size": size,
                    "annotations": {"org.opencontainers.image.title": name}}
                   for name, (digest, size) in sorted(files.items())],
        "annotations": {"org.opencontainers.image.version": version},
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def registry_base(inventory: Any) -> str | None:
    """http://host:port of the site's registry on the VLAN (where the gateway serves the
    release files to the boards), or None without a registry."""
    from runbooks.common.registry import registry_endpoint

    found = registry_endpoint(inventory)
    return found.url if found else None


def push_blob_command(base: str, digest: str) -> str:
    """Remote sh on the registry host: stdin -> a blob upload; the registry refuses it unless
    its sha256 is `digest`."""
    q = shlex.quote
    uploads = q(f"{base}/v2/{REPOSITORY}/blobs/uploads/")
    return ("set -e\n"
            f"loc=$({TRANSFER} -X POST -D - -o /dev/null {uploads} | tr -d '\\r' | "
            "sed -n 's/^[Ll]ocation: *//p')\n"
            f'[ -n "$loc" ] || {{ echo "the registry at {base} gave no upload location" >&2; '
            "exit 4; }\n"
            f'case "$loc" in http*) ;; *) loc={q(base)}"$loc" ;; esac\n'
            "case \"$loc\" in *\\?*) sep='&' ;; *) sep='?' ;; esac\n"
            f"{TRANSFER} -X PUT -H 'Content-Type: application/octet-stream' -T - "
            f'"$loc${{sep}}digest=sha256:{digest}" -o /dev/null\n')


def put_manifest_command(base: str, reference: str) -> str:
    """Remote sh on the registry host: stdin (an OCI manifest) -> tag `reference`."""
    url = shlex.quote(f"{base}/v2/{REPOSITORY}/manifests/{reference}")
    return (f"{TRANSFER} -X PUT -H 'Content-Type: {MANIFEST_TYPE}' --data-binary @- {url} "
            "-o /dev/null")


DOWN = "greenroom: the registry does not answer"


# curl's limits: a registry on the LAN answers at once; a probe never waits for long
PROBE = "curl -sf --connect-timeout 3 -m 15"
TRANSFER = "curl -sSf --connect-timeout 5"


def answering(base: str, command: str) -> str:
    """sh on the registry host: `command` when the registry at `base` answers, else print
    DOWN. The address is checked to be on the host first (before `inv dell-gateway` it is
    not, and a connection to it would only time out)."""
    address = base.split("://", 1)[-1].rsplit(":", 1)[0]
    return (f"if ip -o addr show 2>/dev/null | grep -qF ' {address}/' && "
            f"{PROBE} -o /dev/null {shlex.quote(base + '/v2/')}; then {command}; "
            f"else echo '{DOWN}'; fi")


class BlobPushed(Step):
    """Ensure the site's registry serves `local` as the blob with sha256 `digest`. A registry
    that does not answer (not set up yet) is no failure: the boards then get the files
    straight over SSH; `log` (when given) says so."""

    def __init__(self, base: str, local: Callable[[], Path] | Callable[[], bytes], digest: str,
                 label: str, log: Callable[[str], None] | None = None) -> None:
        self.base, self.local, self.digest, self.log = base, local, digest, log
        self.name = f"Ensure the registry serves {label} (sha256 {digest[:12]})"

    def facts(self) -> Mapping[str, str]:
        url = shlex.quote(blob_url(self.base, self.digest))
        return {"blob": answering(self.base, f"{PROBE} -I -o /dev/null {url}")}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if DOWN in facts["blob"].out:
            if self.log is not None:
                self.log(f"the registry at {self.base} does not answer: the boards get the "
                         "k3s files over SSH instead (`inv registry.up` serves them from the "
                         "gateway)")
            return []
        if facts["blob"].ok:
            return []
        got = self.local()
        data = got if isinstance(got, bytes) else got.read_bytes()  # only when it must travel
        return [Change(f"push {len(data)} bytes into {self.base} (sha256 {self.digest[:12]})",
                       (Action(push_blob_command(self.base, self.digest),
                               data),))]  # type: ignore[arg-type]  # bytes travel as is


class ManifestTagged(Step):
    """Ensure `reference` names exactly `body` (so the blobs it lists are kept)."""

    def __init__(self, base: str, reference: str, body: bytes) -> None:
        self.base, self.reference, self.body = base, reference, body
        self.digest = hashlib.sha256(body).hexdigest()
        self.name = f"Ensure {REPOSITORY}:{reference} lists the files"

    def facts(self) -> Mapping[str, str]:
        url = shlex.quote(f"{self.base}/v2/{REPOSITORY}/manifests/{self.reference}")
        return {"manifest": answering(self.base,
                                      f"{PROBE} -H 'Accept: {MANIFEST_TYPE}' {url} | sha256sum")}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        out = facts["manifest"].out
        current = out.split()[0] if out.split() else ""
        if current == self.digest or DOWN in out:
            return []
        return [Change(f"tag {REPOSITORY}:{self.reference} ({len(self.body)} bytes)",
                       (Action(put_manifest_command(self.base, self.reference),
                               self.body.decode()),))]


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
    base = registry_base(ctx.inventory)
    registry = getattr(ctx.inventory, "registry", None)
    if cluster is None or cluster.distribution != "k3s" or base is None or \
            registry is None or registry.host != ctx.host.name:
        return plan
    lock = ctx.options.get("lock") or release_lock(ctx.inventory, cluster)
    plan.add(BlobPushed(base, lambda: EMPTY, EMPTY_DIGEST, "the manifests' empty config",
                        log=ctx.log))
    for arch in cluster.arches:
        files: dict[str, tuple[str, int]] = {}
        for name in (binary_name(arch), images_name(arch, cluster.images)):
            digest = lock.digest(cluster.version, name)
            if digest is None:
                raise StepFailed(f"{lock.path.name} pins no {name} for {cluster.version}: run "
                                 "`inv k3s.fetch`")
            files[name] = (digest, (cache_dir(cluster.version) / name).stat().st_size)
            plan.add(BlobPushed(base, cached_loader(cluster.version, name, lock), digest,
                                f"{name} {cluster.version}"))
        plan.add(ManifestTagged(base, tag(cluster.version, arch),
                                manifest(files, cluster.version)))
    return plan


RUNBOOK = Runbook("k3s.release", ("registry",), gateway_plan)
