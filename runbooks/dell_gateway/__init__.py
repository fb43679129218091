"""dell-gateway: the lab's gateway PC: VLAN interface, DHCP server, NAT and lease listing."""
