"""The benchmark's "prepare a board" plan, as greenroom steps.

Two config files, a cmdline token, a commented fstab line, a sysctl, a templated containerd
config and a directory: the same work the pyinfra deploy and the Ansible playbook beside this
file do.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from runbooks.common.kernel import Sysctl
from runbooks.core.runner import Runbook
from runbooks.core.steps import Directory, File, LineInFile, Plan, Tokens

HERE = Path(__file__).resolve().parent
MODULES = "overlay\nbr_netfilter\n"
SYSCTL = "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"


@lru_cache(maxsize=1)
def _template() -> Any:
    # imported at the first render, as greenroom's own templates module does
    # (runbooks/core/templates.py): after the first connection, not before any
    import jinja2

    return jinja2.Template((HERE / "containerd.toml.j2").read_text(), keep_trailing_newline=True)


def containerd_config(host: str) -> str:
    return _template().render(hostname=host)


def plan(ctx) -> Plan:
    return Plan().add(
        File("/etc/modules-load.d/k8s.conf", MODULES),
        File("/etc/sysctl.d/k8s.conf", SYSCTL),
        Tokens("/boot/firmware/cmdline.txt", ["cgroup_memory=1", "cgroup_enable=memory"]),
        LineInFile("/etc/fstab", "#/swapfile none swap sw 0 0", match="/swapfile"),
        Sysctl("net.ipv4.ip_forward", 1, file="/etc/sysctl.d/90-bench.conf"),
        File("/etc/containerd/config.toml", containerd_config(ctx.host.name)),
        Directory("/etc/containerd/certs.d"),
    )


RUNBOOK = Runbook("prepare-board", ("pi",), plan)
