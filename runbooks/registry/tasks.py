"""Local image registry: mirror the cluster images into it, verify them, carry them offline."""

from __future__ import annotations

import sys
from functools import partial

from invoke import Collection, Exit

from runbooks.core.cli import inventory_path
from runbooks.core.cli import task as greenroom_task
from runbooks.registry.service_tasks import add_to as add_service_tasks

# greenroom's task decorator (whole numbers checked), keeping Invoke's short flags (-j, -t...)
task = partial(greenroom_task, auto_shortflags=True)

_COMMON = {
    "images": "image list: YAML (see files/registry/images.yaml) or one reference per line "
              "(default files/registry/images.yaml)",
    "to": "target registry HOST:PORT (default: the inventory's registry, VLAN address:port)",
    "inventory": "inventory file used to find the registry (default: greenroom.inventory in "
                 "invoke.yaml)",
    "platform": "comma list of platforms to keep (default linux/arm64, or the list's "
                "'platforms:')",
    "all_platforms": "copy whole multi-platform indexes; the tag keeps the upstream digest",
    "jobs": "parallel transfers (default 8)",
    "rewrite": "repository rewrite FROM=TO applied to target names, e.g. "
               "coredns/coredns=coredns (repeatable)",
    "insecure": "HOST:PORT to reach over plain HTTP (repeatable; loopback and the "
                "inventory's registry always are)",
    "lock": "lock file recording upstream digests (default: the image list with .lock)",
    "runbook": "only this runbook's images (repeatable): cluster-api (the base list), or a "
               "file's name under images.d/, e.g. k3s, metallb",
}


def _inventory(c, inventory, to=None):
    """The inventory (--inventory, else greenroom.inventory from invoke.yaml): it names the
    registry (unless --to does) and pins the versions of the runbooks' image lists."""
    return inventory_path(c, inventory)


def _options(**kw):
    from .run import Options

    kw["rewrite"] = tuple(kw.get("rewrite") or ())
    kw["insecure"] = tuple(kw.get("insecure") or ())
    kw["runbook"] = tuple(kw.get("runbook") or ())
    return Options(**kw)


def _errors():
    """The exception types that are the user's to fix (reported without a traceback)."""
    from .auth import AuthError
    from .images import ImageListError
    from .lockfile import LockError
    from .manifests import ManifestError
    from .targets import TargetError

    types = [AuthError, ImageListError, LockError, ManifestError, TargetError]
    if "runbooks.registry.client" in sys.modules:
        types.append(sys.modules["runbooks.registry.client"].RegistryError)
    return tuple(types)


def _finish(summary) -> None:
    print(summary.text())
    if summary.failed:
        raise Exit(f"{len(summary.failed)} image(s) failed (see above); fix the cause and "
                   "run again: what is present is skipped", code=1)


@task(help=_COMMON | {"refresh": "resolve every tag upstream again instead of the digest the "
                                 "lock pins"},
      iterable=["rewrite", "insecure", "runbook"])
def load_images(c, inventory=None, images=None, to=None, platform=None, all_platforms=False,
                jobs=8, rewrite=None, insecure=None, lock=None, refresh=False, runbook=None):
    """Mirror the image list from upstream registries into the local registry (API v2).

    Streams every blob once (shared layers are mounted), skips what is present, filters to
    the boards' platform by default and prints what went under each tag.
    """
    from . import run

    try:
        summary = run.load_images(_options(
            images=images, to=to, inventory=_inventory(c, inventory, to), platform=platform,
            all_platforms=all_platforms, jobs=int(jobs), rewrite=rewrite, insecure=insecure,
            lock=lock, refresh=refresh, runbook=runbook))
    except _errors() as exc:
        raise Exit(f"registry.load-images: {exc}", code=2) from None
    _finish(summary)


@task(help={k: _COMMON[k] for k in ("images", "to", "inventory", "platform", "all_platforms",
                                     "jobs", "insecure", "lock", "runbook")}
      | {"upstream": "compare with upstream digests even when the lock has them",
         "blobs": "also check that every blob of every manifest is present"},
      iterable=["insecure", "runbook"])
def verify(c, inventory=None, images=None, to=None, platform=None, all_platforms=False, jobs=8,
           insecure=None, lock=None, upstream=False, blobs=False, runbook=None):
    """Check every listed image is in the local registry with the expected platforms and
    the digest upstream has (or the lock recorded). Exits 1 when anything is wrong."""
    from .verify import verify as run_verify

    try:
        checks = run_verify(_options(images=images, to=to,
                                     inventory=_inventory(c, inventory, to),
                                     platform=platform, all_platforms=all_platforms,
                                     jobs=int(jobs), insecure=insecure, lock=lock,
                                     runbook=runbook),
                            upstream=upstream, blobs=blobs)
    except _errors() as exc:
        raise Exit(f"registry.verify: {exc}", code=2) from None
    bad = [ch for ch in checks if not ch.ok]
    for ch in checks:
        print(f"{'ok  ' if ch.ok else 'BAD '} {ch.name}: {ch.detail}")
    print(f"{len(checks) - len(bad)} of {len(checks)} images verified")
    if bad:
        raise Exit(f"{len(bad)} image(s) not as expected; run registry.load-images", code=1)


@task(help={k: _COMMON[k] for k in ("images", "inventory", "platform", "all_platforms", "jobs",
                                     "rewrite", "insecure", "lock", "runbook")}
      | {"to": "directory for the OCI image layout (created; existing blobs are reused)",
         "source": "read every image from this registry HOST:PORT instead of upstream"},
      iterable=["rewrite", "insecure", "runbook"])
def save(c, to, inventory=None, images=None, platform=None, all_platforms=False, jobs=8,
         rewrite=None, insecure=None, lock=None, source=None, runbook=None):
    """Save the image list into an OCI image layout directory, for a venue with no upstream."""
    from . import run

    try:
        summary = run.save(_options(images=images, inventory=_inventory(c, inventory),
                                    platform=platform,
                                    all_platforms=all_platforms, jobs=int(jobs),
                                    rewrite=rewrite, insecure=insecure, lock=lock,
                                    runbook=runbook),
                           to, source=source)
    except _errors() as exc:
        raise Exit(f"registry.save: {exc}", code=2) from None
    _finish(summary)


@task(name="load",
      help={"from_": "OCI image layout directory written by registry.save",
            "to": _COMMON["to"], "inventory": _COMMON["inventory"], "jobs": _COMMON["jobs"],
            "rewrite": _COMMON["rewrite"], "insecure": _COMMON["insecure"]},
      iterable=["rewrite", "insecure"])
def load_layout(c, from_, to=None, inventory=None, jobs=8, rewrite=None, insecure=None):
    """Push every image of a saved OCI image layout into the local registry (offline)."""
    from . import run

    try:
        summary = run.load(_options(to=to, inventory=_inventory(c, inventory, to),
                                    jobs=int(jobs),
                                    rewrite=rewrite, insecure=insecure), from_)
    except _errors() as exc:
        raise Exit(f"registry.load: {exc}", code=2) from None
    _finish(summary)


@task(name="images",
      help={k: _COMMON[k] for k in ("images", "inventory", "runbook")}
      | {"json": "print the list as JSON: [{ref, local, runbook}], plus the upstream "
                 "registries, the nodes' mirror entries and those only registry.trust "
                 "--images adds"},
      iterable=["runbook"])
def list_images(c, inventory=None, images=None, runbook=None, json=False):
    """Print the images this site needs (per runbook, for the versions the inventory pins),
    their names in the local registry and the upstream registries the nodes mirror."""
    import json as jsonlib

    from runbooks.common.registry import mirrored_upstreams

    from .catalog import upstream_registries
    from .run import load_list, trust_hint, unmirrored

    try:
        opts = _options(images=images, inventory=_inventory(c, inventory), runbook=runbook)
        listed = load_list(opts)
    except _errors() as exc:
        raise Exit(f"registry.images: {exc}", code=2) from None
    rows = [{"ref": str(s.source), "local": s.target,
             "runbook": listed.origin.get(str(s.source), "")} for s in listed.images]
    registries = upstream_registries(listed.images)
    mirrored = list(mirrored_upstreams())
    if json:
        print(jsonlib.dumps({"images": rows, "upstream_registries": registries,
                             "node_mirror_entries": mirrored,
                             "needs_trust_images": unmirrored(listed)}, indent=2))
        return
    if listed.note:
        print(f"images for this site: {listed.note}")
    width = max(len(r["ref"]) for r in rows)
    for r in rows:
        print(f"{r['runbook'] or '-':12} {r['ref']:{width}}  -> {r['local']}")
    print(f"upstream registries of these images: {', '.join(registries)}")
    print("mirror entries on the nodes (registry.trust, k3s, microk8s, pi-prep; every "
          f"registry of files/registry's lists): {', '.join(mirrored)}")
    hint = trust_hint(opts, listed)
    if hint:
        print(hint)


@task(name="patch-cluster",
      help={"file": "the Cluster API manifest (e.g. cluster.yaml from clusterctl generate)",
            "out": "write the patched manifest here instead of over FILE ('-': standard output)",
            "check": "print the diff against FILE (or --out FILE) and what would change; "
                     "write nothing; exit 1 when there is a diff, 0 when none",
            "inventory": "inventory giving the registry and network.vip (default: "
                         "greenroom.inventory in invoke.yaml)",
            "images": _COMMON["images"], "runbook": _COMMON["runbook"],
            "to": "local registry HOST:PORT (default: the inventory's)",
            "vip": "control-plane VIP for kube-vip (default: the inventory's network.vip)",
            "containerd": "the node image's containerd version, e.g. 1.7 (hosts.toml for 1.5 "
                          "and later, registry.mirrors before); default: judged from the "
                          "Kubernetes version",
            "pause": "pause image tag (default: kubeadm's for the Kubernetes version)"},
      iterable=["runbook"])
def patch_cluster(c, file, out=None, check=False, inventory=None, images=None, runbook=None,
                  to=None, vip=None, containerd=None, pause=None):
    """Rewrite a Cluster API manifest so its nodes pull every image from the local registry.

    containerd config and hosts.toml files, kubeadm's imageRepository, the sandbox image,
    kube-vip pulled locally with the VIP, add-on images (flannel) in ConfigMaps; comments and
    order kept; a second run changes nothing. --check prints the diff against what the
    target (FILE, or --out FILE) holds, writes nothing, and exits 1 when there is one.
    """
    import difflib
    from pathlib import Path

    from .patch_cluster import PatchError, patch_file, settings_for
    from .run import load_list

    try:
        listed = load_list(_options(images=images, inventory=_inventory(c, inventory),
                                    runbook=runbook))
        settings = settings_for(_inventory(c, inventory), to, vip, containerd, pause,
                                listed.images)
        old, new, report, written = patch_file(file, settings, out, check)
    except (PatchError, *_errors()) as exc:
        raise Exit(f"registry.patch-cluster: {exc}", code=2) from None
    say = sys.stderr if out == "-" else sys.stdout
    if out == "-" and not check:
        sys.stdout.write(new)
    target = out if out and out != "-" else file
    if check and target != file:
        try:
            old = Path(target).read_text(encoding="utf-8")
        except OSError:
            old = ""  # --out names a file that does not exist yet: all of it is new
    if check:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   target, target))
    print(f"containerd config: {report.containerd_form or 'not written'}", file=say)
    for line in report.changed:
        print(f"changed   {line}", file=say)
    for line in report.unchanged:
        print(f"unchanged {line}", file=say)
    for line in report.unknown:
        print(f"LEFT      {line}", file=say)
    for line in report.warnings:
        print(f"WARNING   {line}", file=say)
    if check:
        verdict = "would change" if old != new else "nothing to change in"
    else:
        verdict = "wrote" if written else "nothing to change in"
    print(f"{verdict} {target}", file=say)
    if check and old != new:
        raise Exit(code=1)  # like `diff` and k3s.fetch --check: 1 means work is left


ns = Collection("registry")
add_service_tasks(ns)  # up, trust, check
ns.add_task(load_images)
ns.add_task(verify)
ns.add_task(save)
ns.add_task(load_layout)
ns.add_task(list_images)
ns.add_task(patch_cluster)
