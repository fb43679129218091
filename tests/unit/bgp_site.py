"""A small site with a BGP-mode metallb section and an FRR router, for the BGP unit tests.

`load_site()` reads it as any inventory is read (runbooks/common/schema/metallb.py declares
the section and the router's vars), so problems carry the file's own line numbers.
"""

from __future__ import annotations

from runbooks.common.bgp import MetalLB
from runbooks.core.inventory import Inventory, parse_inventory

FILE = "hosts/bgp.yaml"

SITE = """\
site: bgp
defaults: {user: root}
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}
  vip: 192.168.10.25
metallb:
  version: v0.14.9
  mode: bgp
  asn: 64513
  pools:
    default: [192.168.20.0/28]
    extra: [192.168.10.8-192.168.10.11]
  peers: [edge]
hosts:
  rp0:
    address: 192.168.1.3
    roles: [pi]
    vlan: {parent: eth0, address: 192.168.10.3/25}
  rp1:
    address: 192.168.1.4
    roles: [pi]
    vlan: {parent: eth0, address: 192.168.10.4/25}
  edge:
    address: 192.168.1.6
    roles: [router]
    vlan: {parent: eth0, address: 192.168.10.6/25}
    vars: {kind: frr, asn: 64512}
"""


def load_site(text: str = SITE) -> tuple[Inventory, MetalLB]:
    """(inventory, metallb section) of `text`; InventoryError listing every problem."""
    inventory = parse_inventory(text, FILE)
    metallb = inventory.sections.get("metallb")
    assert isinstance(metallb, MetalLB)
    return inventory, metallb
