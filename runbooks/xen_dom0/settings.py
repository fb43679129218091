"""xen-dom0's settings: a host's `vars:` (validated when the inventory loads) as dataclasses.

    vars:
      dom0: {memory: 4G, max_memory: 4G, vcpus: 2, pin: true}
      xen_default: true             # Xen is GRUB's default entry
      public_bridge: {name: xenbr0, nic: eno1, address: dhcp}   # or 192.168.1.50/24 + gateway
      private_bridges:
        - name: virbr1
          address: 192.168.100.1/24
          dhcp_range: [192.168.100.100, 192.168.100.199]
          lease: 12h                                     # dnsmasq lease time
          reservations:
            - {name: k8s-master, ip: 192.168.100.10, mac: "00:16:3e:ee:ee:01"}
            - {name: k8s-node1, ip: 192.168.100.11}      # MAC generated, always the same
          dnsmasq_options: ["dhcp-option=option:ntp-server,192.168.100.1"]
      port_forwards:
        - {port: 6443, to: 192.168.100.10}               # tcp, same port unless to_port
      masquerade: true

A reservation without `mac` gets one in Xen's 00:16:3e range derived from the site, host,
bridge and reservation names, so it is the same on every run and every machine (put it in
the guest's `vif = ['mac=...']`; `inv xen-dom0.check` lists them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

XEN_OUI = "00:16:3e"
DEFAULT_PUBLIC = "xenbr0"


def stable_mac(site: str, host: str, bridge: str, name: str) -> str:
    """A MAC in Xen's 00:16:3e range, the same for the same names (never multicast)."""
    digest = hashlib.sha256(f"{site}/{host}/{bridge}/{name}".encode()).digest()
    return XEN_OUI + "".join(f":{b:02x}" for b in digest[:3])


@dataclass(frozen=True)
class Reservation:
    name: str
    ip: IPv4Address
    mac: str
    generated: bool = False


@dataclass(frozen=True)
class PrivateBridge:
    name: str
    address: IPv4Interface
    dhcp_range: tuple[IPv4Address, IPv4Address] | None
    reservations: tuple[Reservation, ...] = ()
    lease: str = "12h"
    options: tuple[str, ...] = ()   # extra dnsmasq lines, checked by `dnsmasq --test`


@dataclass(frozen=True)
class PublicBridge:
    name: str
    nic: str
    address: IPv4Interface | None  # None: DHCP
    gateway: IPv4Address | None = None


@dataclass(frozen=True)
class Forward:
    port: int
    to: IPv4Address
    to_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class Dom0:
    memory: str | None = None
    max_memory: str | None = None
    vcpus: int | None = None
    pin: bool = False


@dataclass(frozen=True)
class XenSettings:
    dom0: Dom0 = field(default_factory=Dom0)
    xen_default: bool = True
    public: PublicBridge | None = None
    private: tuple[PrivateBridge, ...] = ()
    forwards: tuple[Forward, ...] = ()
    masquerade: bool = True

    @property
    def default_bridge(self) -> str | None:
        """The bridge a guest's vif joins unless its config names one (xl.conf)."""
        if self.private:
            return self.private[0].name
        return self.public.name if self.public else None


def _memory(value: Any) -> str | None:
    return None if value is None else str(value)


def read_settings(site: str, host: str, raw: dict[str, Any]) -> XenSettings:
    """The settings of one host from its (already validated) `vars:`."""
    d = raw.get("dom0") or {}
    dom0 = Dom0(_memory(d.get("memory")), _memory(d.get("max_memory") or d.get("memory")),
                d.get("vcpus"), bool(d.get("pin", False)))
    public = None
    if raw.get("public_bridge"):
        p = raw["public_bridge"]
        address = p.get("address", "dhcp")
        public = PublicBridge(
            p.get("name", DEFAULT_PUBLIC), p["nic"],
            None if address == "dhcp" else IPv4Interface(address),
            IPv4Address(p["gateway"]) if p.get("gateway") else None)
    bridges = []
    for b in raw.get("private_bridges") or []:
        reservations = []
        for r in b.get("reservations") or []:
            given = r.get("mac")
            mac = str(given).lower() if given else stable_mac(site, host, b["name"], r["name"])
            reservations.append(Reservation(r["name"], IPv4Address(r["ip"]), mac, not given))
        span = b.get("dhcp_range")
        bridges.append(PrivateBridge(
            b["name"], IPv4Interface(b["address"]),
            (IPv4Address(span[0]), IPv4Address(span[1])) if span else None,
            tuple(reservations), str(b.get("lease", "12h")),
            tuple(str(o) for o in b.get("dnsmasq_options") or ())))
    forwards = tuple(Forward(int(f["port"]), IPv4Address(f["to"]),
                             int(f.get("to_port") or f["port"]), f.get("protocol", "tcp"))
                     for f in raw.get("port_forwards") or [])
    return XenSettings(dom0, bool(raw.get("xen_default", True)), public, tuple(bridges),
                       forwards, bool(raw.get("masquerade", True)))
