"""A user's own kubeconfig for the merge tests, and Debian's `kubectl config` to read one back.

The k3s and microk8s runbooks merge their cluster into the user's kubeconfig; the tests start
from `OTHER_KUBECONFIG` (a cluster "work" with a token) and check that it is kept.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

OTHER_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: work, cluster: {server: 'https://10.9.9.9:6443'}}]
users: [{name: work, user: {token: keep-me}}]
contexts: [{name: work, context: {cluster: work, user: work}}]
current-context: work
"""


def users_own_kubeconfig(path: Path) -> Path:
    """Write `OTHER_KUBECONFIG` to `path` (the user's kubeconfig before greenroom's merge)."""
    path.write_text(OTHER_KUBECONFIG)
    return path


def kubectl_config(path: Path, *args: str) -> str:
    """`kubectl config ARGS --kubeconfig PATH`'s output (Debian's kubectl, as a user reads the
    file), with HOME beside the file so nothing of this machine's own ~/.kube is read."""
    done = subprocess.run(["kubectl", "config", *args, "--kubeconfig", str(path)],
                          capture_output=True, text=True, check=True,
                          env={"HOME": str(path.parent), "PATH": "/usr/bin:/bin"})
    return done.stdout
