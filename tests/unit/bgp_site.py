"""A small site with a BGP-mode metallb section and an FRR router, for the BGP unit tests.

Until the inventory's extension point reads `metallb:` itself, `load_site()` validates the
core inventory without the section and the section with `read_metallb` on the same text
(line numbers are those of the whole text).
"""

from __future__ import annotations

from typing import Any

import yaml

from runbooks.common.bgp import MetalLB, read_metallb
from runbooks.core.inventory import Inventory, InventoryError, parse_inventory
from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_model import Problem
from runbooks.core.inventory_yaml import parse_yaml

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
    data = yaml.safe_load(text)
    section = data.pop("metallb", None)
    inventory = parse_inventory(yaml.safe_dump(data, sort_keys=False), FILE)
    _, lines, _ = parse_yaml(text)
    c = Collector(FILE, lines)
    metallb = read_metallb(c, section, inventory.hosts, inventory.network)
    if c.problems or metallb is None:
        raise InventoryError(FILE, c.problems or [Problem(FILE, None, "metallb", "invalid")])
    object.__setattr__(inventory, "sections", {"metallb": metallb})
    return inventory, metallb


def with_sections(inventory: Any, metallb: MetalLB) -> Any:
    """The inventory with its metallb section attached."""
    object.__setattr__(inventory, "sections", {"metallb": metallb})
    return inventory
