"""Bad input in every inventory section the cluster-layer runbooks add: `cluster:` (k3s and
microk8s), `metallb:`, the router's vars, the xen-dom0 vars, `demo:` and the node vars.

Each case mutates one valid site (hosts/lab.yaml with a k3s cluster and a dom0 added, or
hosts/lab-microk8s.yaml), so every expected line is the real line of the offending key. Two
tests per case: the inventory check names file, line and dotted key with a message that
says what to write; and every runbook task that takes the inventory exits 2 with that
problem before opening any connection (a socket connect anywhere fails the test).
"""

from __future__ import annotations

import inspect
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from runbooks.core.inventory import InventoryError, Problem, parse_inventory

ROOT = Path(__file__).resolve().parents[2]
FILE = "hosts/site.yaml"

K3S = """\
cluster:
  version: v1.34.3+k3s1
  source: http://127.0.0.1:18231
  disable: [traefik, servicelb]

"""
DOM0 = """\
  xen0:
    address: 10.231.0.9
    roles: [xen-dom0]
    upstream: eth1
    vlan: {name: vif1.0}
    lab: {kind: systemd, boot: grub}
    vars:
      dom0: {memory: 1024M, vcpus: 1, pin: true}
      xen_default: true
      public_bridge: {name: xenbr0, nic: eth1, address: 10.231.1.9/24, gateway: 10.231.1.1}
      private_bridges:
        - name: virbr1
          address: 192.168.100.1/24
          dhcp_range: [192.168.100.100, 192.168.100.199]
          reservations:
            - {name: domu1, ip: 192.168.100.10}
      port_forwards:
        - {port: 8080, to: 192.168.100.10, to_port: 80}
      masquerade: true
"""


def lab_site() -> str:
    """hosts/lab.yaml with a k3s cluster (rp0 server, rp1 agent) and a dom0 host."""
    text = (ROOT / "hosts" / "lab.yaml").read_text()
    if "\ncluster:" not in text:  # hosts/lab.yaml has it since the lab runs k3s
        text = text.replace("\nlab:\n", "\n" + K3S + "lab:\n", 1)
    for address, role in (("10.231.0.3", "k3s-server"), ("10.231.0.4", "k3s-agent")):
        text = text.replace(f"address: {address}\n    roles: [pi]\n",
                            f"address: {address}\n    roles: [pi, {role}]\n")
    return text + DOM0


SITES = {"lab": lab_site(), "microk8s": (ROOT / "hosts" / "lab-microk8s.yaml").read_text()}


def case(case_id: str, site: str, old: str, new: str, key: str, needle: str,
         fragment: str) -> Any:
    """One case: in SITES[site] replace `old` (once) by `new`; the problem is reported for
    `key` on the line holding `needle`, its message containing `fragment`."""
    return pytest.param(site, old, new, key, needle, fragment, id=case_id)


CASES = [
    # cluster: (k3s)
    case("cluster-version-a-number", "lab", "  version: v1.34.3+k3s1", "  version: 1.34",
         "cluster.version", "version: 1.34", "quote it"),
    case("cluster-disable-not-a-list", "lab", "  disable: [traefik, servicelb]",
         "  disable: traefik", "cluster.disable", "disable: traefik", "must be a list"),
    case("cluster-unknown-key", "lab", "  disable: [traefik, servicelb]\n",
         "  disable: [traefik, servicelb]\n  tokn: x\n", "cluster.tokn", "tokn: x",
         "unknown key 'tokn'"),
    case("cluster-source-not-a-url", "lab", "  source: http://127.0.0.1:18231\n  disable",
         "  source: ftp//x\n  disable", "cluster.source", "source: ftp//x",
         "not an http(s) URL"),
    case("k3s-node-arch", "lab", "10.231.0.4\n    roles: [pi, k3s-agent]\n",
         "10.231.0.4\n    roles: [pi, k3s-agent]\n    vars: {arch: sparc}\n",
         "hosts.rp1.vars.arch",
         "arch: sparc", "unknown architecture 'sparc'"),
    case("cluster-server-args-own-key", "lab", "  disable: [traefik, servicelb]\n",
         "  disable: [traefik, servicelb]\n  server_args: {tls-san: [k3s.lab]}\n",
         "cluster.server_args.tls-san", "server_args:", "set by greenroom from the inventory"),
    case("cluster-server-args-not-a-mapping", "lab", "  disable: [traefik, servicelb]\n",
         "  disable: [traefik, servicelb]\n  server_args: [--debug]\n", "cluster.server_args",
         "server_args: [--debug]", "must be a mapping of k3s config keys"),
    case("cluster-images-format", "lab", "  disable: [traefik, servicelb]\n",
         "  disable: [traefik, servicelb]\n  images: tar.bz3\n", "cluster.images",
         "images: tar.bz3", "use one of: tar.zst, tar.gz, tar"),
    case("cluster-disable-unknown-component", "lab", "  disable: [traefik, servicelb]",
         "  disable: [traefik, servicelbb]", "cluster.disable[1]", "servicelbb",
         "did you mean 'servicelb'"),
    case("k3s-two-servers", "lab", "10.231.0.5\n    roles: [pi, k3s-agent]\n",
         "10.231.0.5\n    roles: [k3s-server, pi]\n", "hosts.lp0.roles",
         "roles: [k3s-server, pi]", "needs an odd number"),
    case("k3s-agents-without-server", "lab", "10.231.0.3\n    roles: [pi, k3s-server]\n",
         "10.231.0.3\n    roles: [pi]\n", "hosts.rp1.roles", "roles: [pi, k3s-agent]",
         "k3s agents need a server to join"),
    case("cluster-distribution-unknown", "lab", "  distribution: k3s", "  distribution: k8s",
         "cluster.distribution", "distribution: k8s", "use one of:"),
    # cluster: (microk8s)
    case("microk8s-channel", "microk8s", "  channel: 1.32/stable", "  channel: latest",
         "cluster.channel", "channel: latest", "not a snap channel"),
    case("microk8s-addon-key", "microk8s", "  addons: [dns, hostpath-storage, {name: ingress}]",
         "  addons: [dns, {nme: ingress}]", "cluster.addons[1].nme", "{nme: ingress}",
         "did you mean 'name'"),
    case("microk8s-kubelet-args", "microk8s", '  kubelet_args: {--max-pods: "60"}',
         "  kubelet_args: [--max-pods]", "cluster.kubelet_args", "kubelet_args: [",
         "must be a mapping of flags"),
    case("microk8s-unknown-key", "microk8s", "  distribution: microk8s\n",
         "  distribution: microk8s\n  versoin: 1\n", "cluster.versoin", "versoin: 1",
         "unknown key 'versoin'"),
    case("microk8s-worker-not-bool", "microk8s", "    vars: {worker: true}",
         "    vars: {worker: maybe}", "hosts.mk2.vars.worker", "worker: maybe",
         "must be true or false"),
    case("microk8s-admin-root", "microk8s", "  admin_user: ada", "  admin_user: root",
         "cluster.admin_user", "admin_user: root", "not root or ubuntu"),
    case("microk8s-ingress-without-addon", "microk8s",
         "  addons: [dns, hostpath-storage, {name: ingress}]", "  addons: [dns]",
         "cluster.ingress_service", "ingress_service:", "needs the ingress addon"),
    case("microk8s-addon-refused", "microk8s",
         "  addons: [dns, hostpath-storage, {name: ingress}]",
         "  addons: [dns, metallb, {name: ingress}]", "cluster.addons[1]", "metallb, {name",
         "is not enabled here"),
    case("microk8s-source-not-a-url", "microk8s", "  admin_user: ada",
         "  admin_user: ada\n  source: /srv/snaps", "cluster.source", "source: /srv/snaps",
         "not an http(s) URL"),
    case("microk8s-distribution-misspelt", "microk8s", "  distribution: microk8s",
         "  distribution: mikrok8s", "cluster.distribution", "distribution: mikrok8s",
         "did you mean"),
    case("microk8s-apiserver-args-flag", "microk8s", '  apiserver_args: {--audit-log-maxage: "3"}',
         '  apiserver_args: {audit-log-maxage: "3"}', "cluster.apiserver_args.audit-log-maxage",
         "apiserver_args: {audit", "is not a flag"),
    case("microk8s-offline-not-bool", "microk8s", "  admin_user: ada",
         "  admin_user: ada\n  offline: sometimes", "cluster.offline", "offline: sometimes",
         "must be true or false"),
    case("microk8s-remove-default-user-not-bool", "microk8s", "  remove_default_user: true",
         "  remove_default_user: maybe", "cluster.remove_default_user",
         "remove_default_user: maybe", "must be true or false"),
    case("microk8s-addon-name", "microk8s", "{name: ingress}]", "{name: Ingress}]",
         "cluster.addons[2].name", "{name: Ingress}", "is not an addon name"),
    case("microk8s-addon-args-not-a-list", "microk8s", "{name: ingress}]",
         "{name: ingress, args: 3}]", "cluster.addons[2].args", "args: 3",
         "must be a list of strings"),
    case("microk8s-ingress-address", "microk8s", "{address: 192.168.30.240}",
         "{address: nowhere}", "cluster.ingress_service.address", "{address: nowhere}",
         "is not an IP address"),
    # metallb:
    case("metallb-version", "lab", "  version: v0.14.9", "  version: latest",
         "metallb.version", "version: latest", "not a MetalLB release"),
    case("metallb-mode", "lab", "  mode: bgp", "  mode: ospf", "metallb.mode", "mode: ospf",
         "use one of: bgp, l2"),
    case("metallb-asn-reserved", "lab", "  asn: 64513", "  asn: 0", "metallb.asn", "asn: 0",
         "use a private one"),
    case("metallb-pool-in-dhcp-range", "lab", "  pools: {default: [192.168.20.0/28]}",
         "  pools: {default: [192.168.10.30-192.168.10.40]}", "metallb.pools.default[0]",
         "192.168.10.30-192.168.10.40", "overlaps the DHCP range"),
    case("metallb-peer-unknown", "lab", "  peers: [edge]", "  peers: [edg]",
         "metallb.peers[0]", "peers: [edg]", "did you mean 'edge'"),
    case("metallb-password-env-name", "lab", "  peers: [edge]",
         "  peers: [edge]\n  password: {env: bgp password}", "metallb.password.env",
         "password: {env: bgp password}", "not an environment variable"),
    case("metallb-hold-time", "lab", "  peers: [edge]", "  peers: [edge]\n  hold_time: 1",
         "metallb.hold_time", "hold_time: 1", "between 3 and 65535"),
    case("metallb-pool-holds-a-host", "lab", "  pools: {default: [192.168.20.0/28]}",
         "  pools: {default: [192.168.10.6/32]}", "metallb.pools.default[0]",
         "192.168.10.6/32", "which host edge already uses"),
    case("metallb-pool-name", "lab", "  pools: {default: [192.168.20.0/28]}",
         "  pools: {Default_Pool: [192.168.20.0/28]}", "metallb.pools.Default_Pool",
         "Default_Pool", "must be a Kubernetes name"),
    case("metallb-l2-with-asn", "microk8s", "  mode: l2", "  mode: l2\n  asn: 64513",
         "metallb.asn", "asn: 64513", "mode l2 has no BGP asn"),
    case("metallb-router-has-cluster-asn", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: frr, asn: 64513}", "metallb.peers[0]", "peers: [edge]",
         "has the cluster's own AS number"),
    case("metallb-source-not-a-url", "lab", "  source: http://127.0.0.1:18231/metallb ",
         "  source: 127.0.0.1:18231/metallb ", "metallb.source", "source: 127.0.0.1:18231/m",
         "not an http(s) URL"),
    case("metallb-ibgp-not-bool", "lab", "  peers: [edge]", "  peers: [edge]\n  ibgp: sometimes",
         "metallb.ibgp", "ibgp: sometimes", "must be true or false"),
    case("metallb-backend", "lab", "  peers: [edge]", "  peers: [edge]\n  backend: bird",
         "metallb.backend", "backend: bird", "use one of: native, frr"),
    case("metallb-password-in-the-file", "lab", "  peers: [edge]",
         "  peers: [edge]\n  password: {value: hunter2}", "metallb.password.value",
         "password: {value: hunter2}", "unknown key 'value'"),
    case("metallb-password-not-a-mapping", "lab", "  peers: [edge]",
         "  peers: [edge]\n  password: GREENROOM_BGP_PASSWORD", "metallb.password",
         "password: GREENROOM_BGP_PASSWORD", "must be a mapping"),
    case("metallb-pools-not-a-mapping", "lab", "  pools: {default: [192.168.20.0/28]}",
         "  pools: [192.168.20.0/28]", "metallb.pools", "pools: [192.168.20.0/28]",
         "must map pool names to address lists"),
    # the router's vars
    case("router-kind", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: cisco, asn: 64512}", "hosts.edge.vars.kind", "kind: cisco",
         "use one of: frr, bird, routeros6, routeros7"),
    case("router-asn-range", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: frr, asn: 99999999999}", "hosts.edge.vars.asn", "99999999999",
         "must be between 1 and 4294967294"),
    case("router-asn-missing", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: frr}", "hosts.edge.vars.asn", "vars: {kind: frr}",
         "missing required key 'asn'"),
    case("router-asn-reserved", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: frr, asn: 23456}", "hosts.edge.vars.asn", "asn: 23456",
         "is reserved"),
    case("router-asn-not-a-number", "lab", "    vars: {kind: frr, asn: 64512}",
         "    vars: {kind: frr, asn: AS64512}", "hosts.edge.vars.asn", "AS64512",
         "must be a whole number"),
    # xen-dom0 vars
    case("xen-dom0-memory", "lab", "      dom0: {memory: 1024M,", "      dom0: {memory: lots,",
         "hosts.xen0.vars.dom0.memory", "memory: lots", "such as 4G or 4096M"),
    case("xen-dom0-vcpus", "lab", "vcpus: 1, pin", "vcpus: 0, pin",
         "hosts.xen0.vars.dom0.vcpus", "vcpus: 0", "out of range"),
    case("xen-misspelt-key", "lab", "      xen_default: true", "      xen_defualt: true",
         "hosts.xen0.vars.xen_defualt", "xen_defualt", "did you mean 'xen_default'"),
    case("xen-public-bridge-prefix", "lab", "address: 10.231.1.9/24,", "address: 10.231.1.9,",
         "hosts.xen0.vars.public_bridge.address", "address: 10.231.1.9,",
         "needs its prefix length"),
    # the range check looks at the whole bridge: it is reported on private_bridges with the
    # bridge and the address named
    case("xen-dhcp-range-outside", "lab", "[192.168.100.100, 192.168.100.199]",
         "[192.168.100.100, 192.168.101.199]", "hosts.xen0.vars.private_bridges",
         "private_bridges:", "virbr1: dhcp_range address 192.168.101.199 is outside"),
    case("xen-port-forward-port", "lab", "{port: 8080,", "{port: 80800,",
         "hosts.xen0.vars.port_forwards[0].port", "port: 80800", "between 1 and 65535"),
    case("xen-masquerade-not-bool", "lab", "      masquerade: true",
         "      masquerade: yes please", "hosts.xen0.vars.masquerade", "yes please",
         "must be true or false"),
    case("xen-dom0-max-memory", "lab", "      dom0: {memory: 1024M,",
         "      dom0: {memory: 1024M, max_memory: 1.5G,", "hosts.xen0.vars.dom0.max_memory",
         "max_memory: 1.5G", "such as 4G"),
    case("xen-dom0-pin-not-bool", "lab", "pin: true}", "pin: often}",
         "hosts.xen0.vars.dom0.pin", "pin: often", "must be true or false"),
    case("xen-dom0-not-a-mapping", "lab", "      dom0: {memory: 1024M, vcpus: 1, pin: true}",
         "      dom0: 1024M", "hosts.xen0.vars.dom0", "dom0: 1024M", "must be a mapping"),
    case("xen-default-not-bool", "lab", "      xen_default: true", "      xen_default: grub",
         "hosts.xen0.vars.xen_default", "xen_default: grub", "must be true or false"),
    case("xen-public-bridge-name", "lab", "{name: xenbr0, nic: eth1,",
         "{name: xen-public-bridge0, nic: eth1,", "hosts.xen0.vars.public_bridge.name",
         "xen-public-bridge0", "at most 15"),
    case("xen-public-bridge-nic-missing", "lab", "{name: xenbr0, nic: eth1, ",
         "{name: xenbr0, ", "hosts.xen0.vars.public_bridge.nic", "public_bridge:",
         "missing required key 'nic'"),
    case("xen-public-bridge-nic-name", "lab", "nic: eth1,", "nic: eth1/0,",
         "hosts.xen0.vars.public_bridge.nic", "nic: eth1/0", "is not an interface name"),
    case("xen-public-bridge-gateway", "lab", "gateway: 10.231.1.1}", "gateway: 10.231.1.256}",
         "hosts.xen0.vars.public_bridge.gateway", "gateway: 10.231.1.256",
         "is not an IPv4 address"),
    case("xen-private-bridge-name", "lab", "        - name: virbr1\n",
         "        - name: vir br1\n", "hosts.xen0.vars.private_bridges[0].name",
         "name: vir br1", "is not an interface name"),
    case("xen-private-bridge-address", "lab", "          address: 192.168.100.1/24",
         "          address: 192.168.100.0/24",
         "hosts.xen0.vars.private_bridges[0].address", "address: 192.168.100.0/24",
         "network's own or broadcast address"),
    case("xen-private-bridges-not-a-list", "lab", "      private_bridges:\n",
         "      private_bridges: virbr1\n      old_private_bridges:\n",
         "hosts.xen0.vars.private_bridges", "private_bridges: virbr1", "must be a list"),
    case("xen-dhcp-range-not-a-list", "lab", "dhcp_range: [192.168.100.100, 192.168.100.199]",
         "dhcp_range: 192.168.100.100-192.168.100.199",
         "hosts.xen0.vars.private_bridges[0].dhcp_range", "dhcp_range: 192.168.100.100-",
         "must be a list"),
    case("xen-lease", "lab", "          reservations:\n",
         "          lease: forever\n          reservations:\n",
         "hosts.xen0.vars.private_bridges[0].lease", "lease: forever", "12h"),
    case("xen-dnsmasq-options-not-a-list", "lab", "          reservations:\n",
         "          dnsmasq_options: dhcp-authoritative\n          reservations:\n",
         "hosts.xen0.vars.private_bridges[0].dnsmasq_options",
         "dnsmasq_options: dhcp-authoritative", "must be a list"),
    case("xen-reservations-not-a-list", "lab",
         "          reservations:\n            - {name: domu1, ip: 192.168.100.10}\n",
         "          reservations: {name: domu1, ip: 192.168.100.10}\n",
         "hosts.xen0.vars.private_bridges[0].reservations", "reservations: {name: domu1",
         "must be a list"),
    case("xen-reservation-name", "lab", "{name: domu1, ip:", "{name: domu_1, ip:",
         "hosts.xen0.vars.private_bridges[0].reservations[0].name", "domu_1", "domu_1"),
    case("xen-reservation-ip", "lab", "ip: 192.168.100.10}", "ip: 192.168.100}",
         "hosts.xen0.vars.private_bridges[0].reservations[0].ip", "ip: 192.168.100}",
         "is not an IPv4 address"),
    case("xen-reservation-mac", "lab", "ip: 192.168.100.10}",
         "ip: 192.168.100.10, mac: \"52:54:00:12:34:56\"}",
         "hosts.xen0.vars.private_bridges[0].reservations[0].mac", "52:54:00:12:34:56",
         "not a MAC in Xen's range"),
    case("xen-port-forward-to", "lab", "to: 192.168.100.10,", "to: domu1,",
         "hosts.xen0.vars.port_forwards[0].to", "to: domu1", "is not an IPv4 address"),
    case("xen-port-forward-to-port", "lab", "to_port: 80}", "to_port: 0}",
         "hosts.xen0.vars.port_forwards[0].to_port", "to_port: 0", "between 1 and 65535"),
    case("xen-port-forward-protocol", "lab", "to_port: 80}", "to_port: 80, protocol: sctp}",
         "hosts.xen0.vars.port_forwards[0].protocol", "protocol: sctp",
         "use one of: tcp, udp"),
    case("xen-port-forwards-not-a-list", "lab",
         "      port_forwards:\n        - {port: 8080, to: 192.168.100.10, to_port: 80}\n",
         "      port_forwards: {port: 8080, to: 192.168.100.10}\n",
         "hosts.xen0.vars.port_forwards", "port_forwards: {port", "must be a list"),
    # demo:
    case("demo-images-not-a-path", "lab", "  images: files/demo/lab-images.yaml",
         "  images: [a]", "demo.images", "images: [a]", "non-empty string"),
    case("demo-unknown-key", "lab", "  images_from: files/demo/lab-images\n",
         "  images_from: files/demo/lab-images\n  clock_tolerence: 5\n",
         "demo.clock_tolerence", "clock_tolerence", "known: clock_tolerance"),
    case("demo-reset-unknown-target", "lab", "      hosts: pi\n", "      hosts: nosuch\n",
         "demo.reset[0].hosts", "hosts: nosuch", "neither a host nor a role"),
    case("demo-clock-tolerance-range", "lab", "  images_from: files/demo/lab-images\n",
         "  images_from: files/demo/lab-images\n  clock_tolerance: 0\n",
         "demo.clock_tolerance", "clock_tolerance: 0", "a number from 0.1 to 3600"),
    case("demo-disk-min-free-range", "lab", "  images_from: files/demo/lab-images\n",
         "  images_from: files/demo/lab-images\n  disk_min_free: 150\n",
         "demo.disk_min_free", "disk_min_free: 150", "a number from 0 to 99"),
    case("demo-workloads-unknown-key", "lab", "{namespaces: [podinfo]}",
         "{namespace: [podinfo]}", "demo.workloads.namespace", "namespace: [podinfo]",
         "known: namespaces, manifests"),
    case("demo-namespaces-not-names", "lab", "{namespaces: [podinfo]}",
         "{namespaces: podinfo}", "demo.workloads.namespaces", "namespaces: podinfo",
         "a list of names"),
    case("demo-reset-without-guard", "lab",
         "      only_if: test -e /var/lib/greenroom-demo/microvms\n", "",
         "demo.reset[0]", "- name: Remove the last run", "give exactly one guard"),
    case("demo-reset-misspelt-run", "lab", "      run: rm -rf", "      rn: rm -rf",
         "demo.reset[0].rn", "rn: rm -rf", "unknown key"),
    case("demo-images-from-not-a-path", "lab", "  images_from: files/demo/lab-images\n",
         "  images_from: 42\n", "demo.images_from", "images_from: 42", "non-empty string"),
    case("demo-kubectl-not-a-command", "lab", "  kubectl: k3s kubectl",
         "  kubectl: [k3s, kubectl]", "demo.kubectl", "kubectl: [k3s, kubectl]",
         "non-empty string"),
    case("demo-manifests-not-a-list", "lab", "{namespaces: [podinfo]}",
         "{namespaces: [podinfo], manifests: podinfo.yaml}", "demo.workloads.manifests",
         "manifests: podinfo.yaml", "a list of names"),
    case("demo-workloads-not-a-mapping", "lab", "  workloads: {namespaces: [podinfo]}",
         "  workloads: [podinfo]", "demo.workloads", "workloads: [podinfo]",
         "expected {namespaces"),
    case("demo-reset-not-a-list", "lab", "  reset:\n    - name: Remove the last run's MicroVM "
         "state\n      hosts: pi\n      run: rm -rf /var/lib/greenroom-demo/microvms\n"
         "      only_if: test -e /var/lib/greenroom-demo/microvms\n",
         "  reset: rm -rf /var/lib/greenroom-demo/microvms\n", "demo.reset",
         "reset: rm -rf", "expected a list of steps"),
    case("demo-reset-name-not-text", "lab", "    - name: Remove the last run's MicroVM state",
         "    - name: [Remove]", "demo.reset[0].name", "name: [Remove]",
         "required: a non-empty string"),
    case("demo-reset-run-not-text", "lab",
         "      run: rm -rf /var/lib/greenroom-demo/microvms", "      run: {rm: x}",
         "demo.reset[0].run", "run: {rm: x}", "required: a non-empty string"),
    case("demo-reset-only-if-not-text", "lab",
         "      only_if: test -e /var/lib/greenroom-demo/microvms", "      only_if: [test]",
         "demo.reset[0].only_if", "only_if: [test]", "a shell test as a string"),
    case("demo-reset-unless-not-text", "lab",
         "      only_if: test -e /var/lib/greenroom-demo/microvms", "      unless: 5",
         "demo.reset[0].unless", "unless: 5", "a shell test as a string"),
]


def mutated(site: str, old: str, new: str) -> str:
    text = SITES[site]
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {site}"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def problems_of(text: str, name: str = FILE) -> list[Problem]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, name)
    return caught.value.problems


@pytest.mark.parametrize("site", sorted(SITES))
def test_the_sites_the_cases_start_from_are_valid(site):
    inventory = parse_inventory(SITES[site], FILE)
    assert inventory.sections.get("cluster") is not None


@pytest.mark.parametrize(("site", "old", "new", "key", "needle", "fragment"), CASES)
def test_names_file_line_and_key(site, old, new, key, needle, fragment):
    text = mutated(site, old, new)
    problems = problems_of(text)
    assert all(p.file == FILE for p in problems)
    mine = [p for p in problems if p.key == key]
    assert mine, f"no problem for {key}; got {[str(p) for p in problems]}"
    line = line_of(text, needle)
    assert any(p.line == line and fragment in p.message for p in mine), (
        f"wanted line {line} with {fragment!r}; got {[str(p) for p in mine]}")


# Every task that runs a runbook or reads the site: the ones of the cluster layer and the
# demo, with the gateway's and the boards' for good measure.
TASKS = ("dell-gateway.converge", "registry.up", "pi-prep.converge", "k3s.converge",
         "k3s.fetch", "microk8s.converge", "metallb.converge", "metallb.fetch",
         "router.converge", "xen-dom0.converge", "demo.check", "demo.reset")


@pytest.fixture(scope="module")
def tasks() -> dict[str, Any]:
    import tasks as root

    return {name: root.ns[name] for name in TASKS}


def call(task: Any, inventory: str) -> Any:
    """Call an Invoke task as the CLI would with only --inventory given."""
    params = inspect.signature(task.body).parameters
    kwargs = {k: p.default for k, p in params.items()
              if k != "c" and p.default is not inspect.Parameter.empty}
    kwargs["inventory"] = inventory
    return task(Context(), **kwargs)


@pytest.fixture
def no_connections(monkeypatch):
    """Any TCP/unix connect in this process fails the test."""
    attempts: list[Any] = []

    def refuse(self, address, *args):  # noqa: ANN001
        attempts.append(address)
        raise AssertionError(f"connection attempted to {address} before the input was valid")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(("site", "old", "new", "key", "needle", "fragment"), CASES)
def test_every_task_refuses_before_any_connection(site, old, new, key, needle, fragment,
                                                  tasks, tmp_path, no_connections):
    text = mutated(site, old, new)
    path = tmp_path / "site.yaml"
    path.write_text(text)
    where = f"{path}:{line_of(text, needle)}: {key}: "
    for name, task in tasks.items():
        with pytest.raises(Exit) as refused:
            call(task, str(path))
        assert refused.value.code == 2, f"{name}: exit {refused.value.code}"
        assert where in str(refused.value.message), f"{name}: {refused.value.message}"
    assert no_connections == []


def _schema_keys(fields: Any, prefix: str) -> list[str]:
    """Every key of a Table's fields, nested Tables and list items included (dotted)."""
    from runbooks.core.inventory_schema import Table

    keys = []
    for name, schema in fields.items():
        keys.append(prefix + name)
        inner = schema if isinstance(schema, Table) else getattr(schema, "items", None)
        if isinstance(inner, Table):
            keys += _schema_keys(inner.fields, f"{prefix}{name}.")
    return keys


def declared_keys() -> list[str]:
    """Every key the sections of the cluster layer and the demo declare, read from their
    schemas (hosts' vars as vars.KEY, list indexes dropped)."""
    from runbooks.common import bgp, demo_section, kube_cluster, microk8s_cluster
    from runbooks.core.inventory_schema import vars_schema

    keys = [f"cluster.{k}" for k in {*kube_cluster.CLUSTER_KEYS, *microk8s_cluster.KEYS}]
    keys += ["cluster.addons.name", "cluster.addons.args", "cluster.ingress_service.address"]
    keys += [f"metallb.{k}" for k in bgp.SECTION_KEYS]
    keys += [f"metallb.password.{k}" for k in bgp.PASSWORD_KEYS]
    keys += [f"demo.{k}" for k in demo_section.KEYS]
    keys += ["demo.workloads.namespaces", "demo.workloads.manifests"]
    keys += [f"demo.reset.{k}" for k in demo_section.STEP_KEYS]
    for role in ("router", "xen-dom0", "k3s-server", "microk8s"):
        keys += _schema_keys(vars_schema([role]), "vars.")
    return sorted(set(keys))


def _covered(key: str) -> str:
    key = re.sub(r"\[\d+\]", "", key)
    return re.sub(r"^hosts\.[^.]+\.vars\.", "vars.", key)


def test_every_declared_key_has_a_bad_input_row():
    """The table above covers every key of these sections (a new key needs its row)."""
    rows = {_covered(c.values[3]) for c in CASES}
    missing = [k for k in declared_keys()
               if not any(r == k or r.startswith(k + ".") for r in rows)]
    assert missing == []
    assert len(declared_keys()) > 60
