"""Role names and limits that the inventory's declarations (runbooks/common/schema) share
with the section readers (kube_cluster, microk8s_cluster, bgp): plain constants, cheap to
import, so a declaration module does not import its reader until an inventory has the
section (a `pi` fleet's run never pays for the cluster, MetalLB or demo readers)."""

K3S_SERVER, K3S_AGENT = "k3s-server", "k3s-agent"
MICROK8S = "microk8s"
ROUTER_KINDS = ("frr", "bird", "routeros6", "routeros7")
ASN_MAX = 4294967295
# 0, AS_TRANS and the last of each range are reserved (RFC 7607, 6793, 7300)
RESERVED_ASNS = (0, 23456, 65535, ASN_MAX)
