"""The Kubernetes apt repository for one pinned minor version, and kubelet kubeadm kubectl
installed and held (only when the host's `vars: kubernetes:` asks for it).

The repository's base URL comes from the inventory (`kubernetes.repo`, the Kubernetes
project's package host as its install docs name it); the minor version selects the path
`<repo>/core:/stable:/v<minor>/deb/`, signed by the key the same path publishes.
"""

from __future__ import annotations

import shlex

from runbooks.core.steps.base import Command, Step
from runbooks.core.steps.files import Directory, File
from runbooks.core.steps.system import APT_ENV, Packages

KEYRING = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/kubernetes.list"
TOOLS = ("kubelet", "kubeadm", "kubectl")


def repo_url(base: str, minor: str) -> str:
    """The apt repository URL of one minor version (`1.28`)."""
    return f"{base.rstrip('/')}/core:/stable:/v{minor}/deb/"


def apt_list_prefix(url: str) -> str:
    """The prefix apt gives the list files of `url` under /var/lib/apt/lists/."""
    return url.split("://", 1)[-1].rstrip("/").replace("/", "_")


def kubernetes_steps(base: str, minor: str) -> list[Step]:
    """Keyring, source list, fresh lists, the three tools installed and held."""
    url = repo_url(base, minor)
    q = shlex.quote
    held = " ".join(TOOLS)
    return [
        Packages(["ca-certificates", "curl", "gpg"]),
        Directory("/etc/apt/keyrings", "755"),
        Command(f"Ensure the Kubernetes v{minor} apt signing key in {KEYRING}",
                f"curl -fsSL {q(url + 'Release.key')} | gpg --dearmor --yes -o {q(KEYRING)}"
                f" && chmod 644 {q(KEYRING)}",
                unless=f"test -s {q(KEYRING)}"),
        File(SOURCES, f"deb [signed-by={KEYRING}] {url} /\n"),
        Command(f"Ensure apt lists for Kubernetes v{minor}",
                f"{APT_ENV} apt-get update -q",
                unless=f"ls /var/lib/apt/lists/ | grep -qF {q(apt_list_prefix(url))}"),
        Packages(list(TOOLS)),
        Command(f"Ensure {held} are held at v{minor}",
                f"apt-mark hold {held}",
                unless=f"[ \"$(apt-mark showhold | grep -cxE '{'|'.join(TOOLS)}')\" = 3 ]"),
    ]
