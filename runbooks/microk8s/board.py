"""The seed's board preparation that belongs to microk8s nodes (the rest is pi-prep's):

- a named admin user (`cluster.admin_user`) with sudo: created with a home and bash, in group
  sudo, allowed sudo without a password by /etc/sudoers.d/90-greenroom-<name> (checked with
  `visudo -c` before it is put in place: the image's users have no password), and given the
  login user's SSH keys when it has none, so it can log in once `ubuntu` is gone;
- the image's default user `ubuntu` removed (`userdel --remove`) only when
  `cluster.remove_default_user: true`, never when it is the user greenroom logs in as;
- the seed's boot-time sysctls (`sysctl -p` from /etc/rc.local after `sleep 120`) as
  sysctl.d settings with br_netfilter loaded at boot: the common kernel steps pi-prep uses,
  in the same files.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from runbooks.common.kernel import KernelModule, Sysctl
from runbooks.core.steps import Command, File, Step, StepFailed

if TYPE_CHECKING:
    from runbooks.common.microk8s_cluster import Microk8sCluster
    from runbooks.core.context import HostContext

DEFAULT_USER = "ubuntu"
SYSCTL_FILE = "/etc/sysctl.d/k8s.conf"           # pi-prep's files: one place per setting
MODULES_FILE = "/etc/modules-load.d/k8s.conf"
SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
           "net.bridge.bridge-nf-call-ip6tables")


def kernel_steps() -> list[Step]:
    """br_netfilter (the bridge sysctls need it) and the seed's three sysctls, live and at
    boot."""
    return [KernelModule("br_netfilter", file=MODULES_FILE),
            *(Sysctl(key, 1, file=SYSCTL_FILE) for key in SYSCTLS)]


def admin_steps(name: str, login: str) -> list[Step]:
    """The admin user `name`, in group sudo, sudo without password, with SSH keys."""
    q = shlex.quote
    user = q(name)
    keys = f'"$(getent passwd {user} | cut -d: -f6)/.ssh/authorized_keys"'
    source = f'"$(getent passwd {q(login)} | cut -d: -f6)/.ssh/authorized_keys"'
    return [
        Command(f"Ensure user {name} exists", f"useradd --create-home --shell /bin/bash {user}",
                unless=f"id -u {user} >/dev/null 2>&1"),
        Command(f"Ensure {name} is in group sudo", f"usermod -a -G sudo {user}",
                unless=f"id -nG {user} | tr ' ' '\\n' | grep -qx sudo"),
        File(f"/etc/sudoers.d/90-greenroom-{name}",
             f"# written by greenroom (inv microk8s): the admin user of the board\n"
             f"{name} ALL=(ALL:ALL) NOPASSWD: ALL\n", mode="440", validate="visudo -cf {}"),
        Command(f"Ensure {name} has the SSH keys {login} logs in with",
                f"d=$(dirname {keys}); install -d -m 700 -o {user} -g {user} \"$d\" && "
                f"install -m 600 -o {user} -g {user} {source} {keys}",
                unless=f"[ -s {keys} ] || [ ! -s {source} ]"),
    ]


def remove_default_steps(login: str) -> list[Step]:
    """`ubuntu` removed with its home, never when it is the login user."""
    if login == DEFAULT_USER:
        raise StepFailed(f"greenroom logs in as {DEFAULT_USER}: it cannot remove that user; "
                         "log in as the admin user (hosts' user:) or drop "
                         "cluster.remove_default_user")
    return [Command(f"Remove the default user {DEFAULT_USER} and its home",
                    f"userdel --remove {DEFAULT_USER}",
                    only_if=f"id -u {DEFAULT_USER} >/dev/null 2>&1")]


def board_steps(ctx: HostContext, cluster: Microk8sCluster) -> list[Step]:
    """What the inventory asks of this board, before microk8s is installed."""
    login = ctx.host.user or "root"
    steps = kernel_steps()
    if cluster.admin_user:
        steps += admin_steps(cluster.admin_user, login)
    if cluster.remove_default_user:
        steps += remove_default_steps(login)
    return steps
