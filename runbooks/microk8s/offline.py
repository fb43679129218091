"""Offline install: the pinned snap and assertion (`inv microk8s.fetch`) pushed from this
machine's cache to each node's /var/cache/greenroom/microk8s/, checked by sha256 there, then
`snap ack` + `snap install ./microk8s_<rev>.snap --classic` (snapd checks the snap against
the acknowledged assertion). No store is needed on the nodes."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.common.microk8s_cluster import Microk8sCluster
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed
from runbooks.microk8s.fetch import Fetched, FetchError, Lock, cached, fetch, lock_path, names

if TYPE_CHECKING:
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


def upload_command(path: str, digest: str) -> str:
    """Remote sh: stdin -> a temp file beside `path`, sha256 checked, renamed over it."""
    q = shlex.quote
    return ("set -e\n"
            f"mkdir -p {q(NODE_CACHE)}\n"
            f"tmp=$(mktemp {q(path)}.greenroom.XXXXXX)\n"
            "trap 'rm -f \"$tmp\"' EXIT\n"
            'cat > "$tmp"\n'
            f'if ! echo "{digest}  $tmp" | sha256sum -c --status -; then echo "{path} arrived '
            'with another sha256; nothing was replaced" >&2; exit 4; fi\n'
            f'chmod 644 "$tmp"\nmv -f "$tmp" {q(path)}\ntrap - EXIT\n')


class Pushed(Step):
    """`path` on the node has sha256 `digest`, else the local file is pushed there."""

    def __init__(self, name: str, local: Path, digest: str) -> None:
        self.path, self.local, self.digest = f"{NODE_CACHE}/{name}", local, digest
        self.name = f"Ensure {self.path} (sha256 {digest[:12]}, from this machine's cache)"

    def facts(self) -> Mapping[str, str]:
        return {"sum": f"sha256sum {shlex.quote(self.path)}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["sum"]
        current = fact.out.split()[0] if fact.ok and fact.out.split() else None
        if current == self.digest:
            return []
        data = self.local.read_bytes()
        return [Change(f"{'replace' if current else 'push'} {self.path} ({len(data)} bytes)",
                       (Action(upload_command(self.path, self.digest),
                               data),))]  # type: ignore[arg-type]  # bytes travel as is
