"""Lease database parsing (dhcpd.leases(5)), including where dhcp-lease-list goes wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address

import pytest

from runbooks.dell_gateway.leases import active_leases, format_table, parse_leases, unquote

NOW = datetime(2024, 1, 10, 10, 5, tzinfo=UTC)
HEADER = """\
# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\\000\\001\\000\\001,\\225\\021|\\002\\303";

"""


def lease(ip="192.168.10.26", starts="3 2024/01/10 10:00:00", ends="3 2024/01/10 10:10:00",
          state="active", mac="02:aa:bb:cc:dd:ee", extra="") -> str:
    lines = [f"lease {ip} {{", f"  starts {starts};", f"  ends {ends};",
             "  cltt 3 2024/01/10 10:00:00;", f"  binding state {state};",
             "  next binding state free;", "  rewind binding state free;"]
    if mac:
        lines.append(f"  hardware ethernet {mac};")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n}\n"


def one(text: str):
    (found,) = parse_leases(HEADER + text)
    return found


@pytest.mark.parametrize(("text", "field", "value"), [
    (lease(extra='  client-hostname "microvm";'), "hostname", "microvm"),
    (lease(), "hostname", None),
    (lease(extra='  client-hostname "my lease box";'), "hostname", "my lease box"),
    (lease(extra='  client-hostname "a\\"b";'), "hostname", 'a"b'),
    (lease(extra='  client-hostname "caf\\303\\251";'), "hostname", "café"),
    (lease(extra='  uid "\\001{};\\"x";\n  client-hostname "after";'), "hostname", "after"),
    (lease(ends="never"), "end", None),
    (lease(starts="epoch 1704880800; # Wed Jan 10 10:00:00 2024"), "start",
     datetime(2024, 1, 10, 10, 0, tzinfo=UTC)),
    (lease(mac="02:AA:BB:CC:DD:EE"), "mac", "02:aa:bb:cc:dd:ee"),
    (lease(mac=""), "mac", None),
    (lease(state="free", extra="  abandoned;"), "state", "abandoned"),
    (lease(extra='  set vendor-class-identifier = "udhcp 1.36";'), "state", "active"),
], ids=["hostname", "no-hostname", "hostname-with-lease-and-spaces", "escaped-quote",
        "octal-utf8", "braces-in-uid-string", "ends-never", "epoch-time", "upper-case-mac",
        "no-mac", "abandoned", "set-statement-ignored"])
def test_lease_fields(text, field, value):
    assert getattr(one(text), field) == value


def test_latest_entry_per_ip_wins_and_order_is_by_ip():
    text = (lease("192.168.10.30", state="active")
            + lease("192.168.10.26", state="active")
            + lease("192.168.10.30", state="released", ends="3 2024/01/10 10:04:00"))
    found = parse_leases(HEADER + text)
    assert [(str(x.ip), x.state) for x in found] == [("192.168.10.26", "active"),
                                                   ("192.168.10.30", "released")]


def test_active_means_bound_now():
    text = (lease("192.168.10.26")                                       # active, ends later
            + lease("192.168.10.27", ends="3 2024/01/10 10:01:00")      # ended already
            + lease("192.168.10.28", state="free")                      # freed
            + lease("192.168.10.29", ends="never")                      # infinite
            + lease("192.168.10.31", state="released"))                 # released, end ahead
    assert [str(x.ip) for x in active_leases(parse_leases(text), NOW)] == [
        "192.168.10.26", "192.168.10.29"]


def test_non_lease_blocks_and_ipv6_are_skipped():
    text = ('failover peer "fo" state {\n  my state normal at 3 2024/01/10 10:00:00;\n}\n'
            'host rp9 {\n  dynamic;\n  hardware ethernet 02:00:00:00:00:09;\n'
            '  fixed-address 192.168.10.9;\n}\n'
            'ia-na "\\001\\002" {\n  iaaddr 2001:db8::1 {\n    binding state active;\n  }\n}\n'
            + lease())
    assert [str(x.ip) for x in parse_leases(HEADER + text)] == ["192.168.10.26"]


def test_empty_database():
    assert parse_leases(HEADER) == [] and parse_leases("") == []


def test_unquote_octal_and_escapes():
    assert unquote('"\\000\\001a\\\\b"') == "\x00\x01a\\b"


def test_table_and_json():
    found = one(lease(ends="never", extra='  client-hostname "rp9";'))
    table = format_table([found])
    assert table.splitlines()[1].split() == ["192.168.10.26", "02:aa:bb:cc:dd:ee", "rp9",
                                             "2024-01-10", "10:00:00", "never", "active"]
    assert found.as_json() == {"ip": "192.168.10.26", "mac": "02:aa:bb:cc:dd:ee",
                               "hostname": "rp9", "start": "2024-01-10T10:00:00+00:00",
                               "end": None, "state": "active"}
    assert found.ip == IPv4Address("192.168.10.26")
