"""The benchmark plan as a pyinfra 3 deploy (same files, lines, sysctl, template, directory)."""

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, server

HERE = Path(__file__).resolve().parent

files.put(name="modules", src=StringIO("overlay\nbr_netfilter\n"),
          dest="/etc/modules-load.d/k8s.conf")
files.put(name="sysctl file",
          src=StringIO("net.bridge.bridge-nf-call-iptables = 1\n"
                       "net.bridge.bridge-nf-call-ip6tables = 1\n"),
          dest="/etc/sysctl.d/k8s.conf")
files.replace(name="cmdline", path="/boot/firmware/cmdline.txt", text="rootwait$",
              replace="rootwait cgroup_memory=1 cgroup_enable=memory")
files.line(name="fstab", path="/etc/fstab", line="^/swapfile.*",
           replace="#/swapfile none swap sw 0 0")
server.sysctl(name="forwarding", key="net.ipv4.ip_forward", value=1, persist=True,
              persist_file="/etc/sysctl.d/90-bench.conf")
files.template(name="containerd", src=str(HERE / "containerd.toml.j2"),
               dest="/etc/containerd/config.toml", hostname=host.name)
files.directory(name="certs.d", path="/etc/containerd/certs.d")
