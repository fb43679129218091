# written by greenroom (inv router) for site bgp (bgp.yaml)
# BGP sessions with the cluster's MetalLB speakers; paste into the terminal.
/routing/bgp/template set default as=64512 router-id=192.168.10.6
/routing/filter/rule remove [find comment=greenroom]
/routing/filter/rule add chain=metallb-in rule="if (dst in 192.168.10.8/30 && dst-len in 30-32) { accept }" comment=greenroom
/routing/filter/rule add chain=metallb-in rule="if (dst in 192.168.20.0/28 && dst-len in 28-32) { accept }" comment=greenroom
/routing/filter/rule add chain=metallb-in rule=reject comment=greenroom
/routing/filter/rule add chain=metallb-out rule=reject comment=greenroom
:foreach p in=[/routing/bgp/connection find where name~"^metallb-"] do={ /routing/bgp/connection remove $p }
/routing/bgp/connection add name=metallb-rp0 templates=default as=64512 remote.address=192.168.10.3 remote.as=64513 local.role=ebgp input.filter=metallb-in output.filter-chain=metallb-out
/routing/bgp/connection add name=metallb-rp1 templates=default as=64512 remote.address=192.168.10.4 remote.as=64513 local.role=ebgp input.filter=metallb-in output.filter-chain=metallb-out
