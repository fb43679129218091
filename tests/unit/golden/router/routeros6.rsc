# written by greenroom (inv router) for site bgp (bgp.yaml)
# BGP sessions with the cluster's MetalLB speakers; paste into the terminal.
/routing bgp instance set default as=64512 router-id=192.168.10.6
/routing filter remove [find comment=greenroom]
/routing filter add chain=metallb-in prefix=192.168.10.8/30 prefix-length=30-32 action=accept comment=greenroom
/routing filter add chain=metallb-in prefix=192.168.20.0/28 prefix-length=28-32 action=accept comment=greenroom
/routing filter add chain=metallb-in action=discard comment=greenroom
/routing filter add chain=metallb-out action=discard comment=greenroom
:foreach p in=[/routing bgp peer find where name~"^metallb-"] do={ /routing bgp peer remove $p }
/routing bgp peer add name=metallb-rp0 instance=default remote-address=192.168.10.3 remote-as=64513 in-filter=metallb-in out-filter=metallb-out tcp-md5-key=s3cret-pw
/routing bgp peer add name=metallb-rp1 instance=default remote-address=192.168.10.4 remote-as=64513 in-filter=metallb-in out-filter=metallb-out tcp-md5-key=s3cret-pw
