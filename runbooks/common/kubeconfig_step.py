"""The step both cluster runbooks end with: the cluster's admin kubeconfig, read on a server
node, renamed to the site and merged into the operator's kubeconfig on this machine
(runbooks.common.kubeconfig does the YAML; this module only runs it as a step).

    KubeconfigMerged(ctx, "lab", "https://192.168.10.25:6443", Path("~/.kube/config"),
                     read="cat /etc/rancher/k3s/k3s.yaml", what="k3s")
    KubeconfigMerged(ctx, "labmk8s", "https://192.168.30.3:16443", path,
                     read="microk8s config", what="microk8s")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.common.kubeconfig import (
    KubeconfigError,
    merge_kubeconfig,
    names_in,
    read_kubeconfig,
    site_kubeconfig,
    write_kubeconfig,
)
from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step, StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

# The change is made while planning (a file on this machine, not on the host): an action that
# does nothing on the host, so the engine does not take it for a precondition left to the user.
DONE = (Action(":"),)


class KubeconfigMerged(Step):
    """Ensure the operator's kubeconfig `path` has the cluster as context `site` (its cluster,
    user and context renamed to `site`, its server set to `server`; every other entry kept).
    `read` is the shell command printing the cluster's kubeconfig on the host, `what` the
    distribution named in messages."""

    verify = False

    def __init__(self, ctx: HostContext, site: str, server: str, path: Path, *, read: str,
                 what: str) -> None:
        self.ctx, self.site, self.server, self.path = ctx, site, server, path
        self.read, self.what = read, what
        self.name = f"Ensure context {site} in {path} (server {server})"

    def facts(self) -> Mapping[str, str]:
        return {"kubeconfig": self.read}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["kubeconfig"]
        if not fact.ok:
            if self.ctx.check:
                return [Change(f"would merge context {self.site} into {self.path} once "
                               f"{self.what} runs on {self.ctx.host.name}")]
            raise StepFailed(f"`{self.read}` failed on {self.ctx.host.name} (exit {fact.rc}): "
                             f"is {self.what} running? See `inv {self.what}.check`")
        try:
            site = site_kubeconfig(fact.out, self.site, self.server)
            current = read_kubeconfig(self.path)
            merged = merge_kubeconfig(current, site)
        except KubeconfigError as exc:
            raise StepFailed(f"{self.path}: {exc}") from None
        if merged is current:
            return []
        had = names_in(current)["contexts"] if current is not None else []
        verb = "update" if self.site in had else "add"
        if not self.ctx.check:
            write_kubeconfig(self.path, merged)
        return [Change(f"{verb} cluster, user and context {self.site} in {self.path} "
                       "(other contexts kept)", () if self.ctx.check else DONE)]
