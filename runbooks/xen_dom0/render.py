"""The files xen-dom0 writes, rendered from its settings (pure: no host involved)."""

from __future__ import annotations

from dataclasses import dataclass

from runbooks.core.templates import render
from runbooks.xen_dom0.settings import PrivateBridge, XenSettings

DNSMASQ_BASE = "/var/lib/dnsmasq"
INTERFACES = "/etc/network/interfaces.d/greenroom-xen"
GRUB_XEN = "/etc/default/grub.d/xen.cfg"
IFNAMSIZ = 15


def xen_cmdline(settings: XenSettings) -> str:
    """GRUB_CMDLINE_XEN_DEFAULT: dom0_mem=4G,max:4G dom0_max_vcpus=2 dom0_vcpus_pin."""
    words = []
    dom0 = settings.dom0
    if dom0.memory:
        words.append(f"dom0_mem={dom0.memory},max:{dom0.max_memory or dom0.memory}")
    if dom0.vcpus:
        words.append(f"dom0_max_vcpus={dom0.vcpus}")
    if dom0.pin:
        words.append("dom0_vcpus_pin")
    return " ".join(words)


def grub_xen_cfg(settings: XenSettings, source: str) -> str:
    """/etc/default/grub.d/xen.cfg."""
    return render("xen_dom0/xen.cfg.j2", source=source, xen_cmdline=xen_cmdline(settings),
                  override=1 if settings.xen_default else 0)


def dummy_name(bridge: str) -> str:
    """The dummy port of a private bridge (the seed's `<bridge>-dummy`, kept within 15)."""
    name = f"{bridge}-dummy"
    return name if len(name) <= IFNAMSIZ else f"{bridge[:IFNAMSIZ - 2]}-d"


@dataclass(frozen=True)
class _BridgeView:
    name: str
    address: object
    dummy: str | None
    dummy_mac: str | None


def interfaces(settings: XenSettings, source: str, has_dummy: bool,
               dummy_macs: dict[str, str] | None = None) -> str:
    """The ifupdown stanzas of the bridges (a dummy port where the kernel has the driver,
    else `bridge_ports none`: a guest's vif gives the bridge its carrier)."""
    macs = dummy_macs or {}
    private = [_BridgeView(b.name, b.address, dummy_name(b.name) if has_dummy else None,
                           macs.get(b.name)) for b in settings.private]
    return render("xen_dom0/interfaces.j2", source=source, public=settings.public,
                  private=private, default_bridge=settings.default_bridge)


def dnsmasq_conf(bridge: PrivateBridge, source: str) -> str:
    """The per-bridge dnsmasq configuration (the bridge's own options last)."""
    return render("xen_dom0/dnsmasq.conf.j2", source=source, bridge=bridge,
                  folder=f"{DNSMASQ_BASE}/{bridge.name}", extra=bridge.options)


def hostsfile(bridge: PrivateBridge) -> str:
    """dhcp-hostsfile lines: MAC,IP,name per reservation."""
    return render("xen_dom0/hostsfile.j2", bridge=bridge)


def dnsmasq_template_unit(source: str) -> str:
    """The seed's dnsmasq@.service, for releases whose dnsmasq ships none."""
    return render("xen_dom0/dnsmasq@.service.j2", source=source, base=DNSMASQ_BASE)


def dnsmasq_default(bridge: str, source: str) -> str:
    """/etc/default/dnsmasq.<bridge>: the package's template reads it for the instance."""
    return render("xen_dom0/dnsmasq.default.j2", source=source, bridge=bridge,
                  base=DNSMASQ_BASE)
