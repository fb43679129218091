"""`inv metallb.convert`: the seeds' ConfigMaps become greenroom's metallb section."""

from __future__ import annotations

import pytest
import yaml

from runbooks.metallb.convert import ConvertError, convert
from tests.unit.bgp_site import SITE, load_site

SEED_001 = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - peer-address: 10.0.2.1
      peer-asn: 65530
      my-asn: 64500
    address-pools:
    - name: default
      protocol: bgp
      avoid-buggy-ips: true
      addresses:
      - 10.0.4.0/23
"""

SEED_003 = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - peer-address: 192.168.1.1
      peer-asn: 65000
      my-asn: 65001
    address-pools:
    - name: default
      protocol: bgp
      addresses:
      #- 192.168.1.10-192.168.1.100
      - 192.168.254.0/32
"""


def test_seed_001_mikrotik() -> None:
    done = convert(SEED_001)
    assert done.section == {"version": "v0.14.9", "mode": "bgp", "asn": 64500,
                            "pools": {"default": ["10.0.4.0/23"]},
                            "peers": ["router-10-0-2-1"]}
    assert done.new_routers == {"router-10-0-2-1": {
        "address": "10.0.2.1", "roles": ["router"], "vars": {"kind": "frr", "asn": 65530}}}
    assert any("avoid-buggy-ips" in note for note in done.notes)


def test_seed_003_openwrt_with_a_known_router() -> None:
    done = convert(SEED_003, routers_by_address={"192.168.1.1": "openwrt"})
    assert done.section["peers"] == ["openwrt"] and done.new_routers == {}
    assert done.section["pools"] == {"default": ["192.168.254.0/32"]}
    text = done.text()
    assert yaml.safe_load(text)["metallb"]["asn"] == 65001


def test_converted_section_validates_in_an_inventory() -> None:
    done = convert(SEED_003.replace("192.168.1.1", "192.168.10.6").replace(
        "65000", "64512").replace("65001", "64513").replace("192.168.254.0/32",
                                                             "192.168.20.0/28"),
        routers_by_address={"192.168.10.6": "edge"})
    section = yaml.safe_dump({"metallb": done.section}, sort_keys=False)
    start = SITE.index("metallb:")
    end = SITE.index("hosts:")
    _, metallb = load_site(SITE[:start] + section + SITE[end:])
    assert metallb.peers == ("edge",) and metallb.asn == 64513


def test_password_is_never_copied() -> None:
    text = SEED_001.replace("my-asn: 64500", "my-asn: 64500\n      password: hunter2")
    done = convert(text)
    assert "hunter2" not in done.text()
    assert done.section["password"] == {"env": "GREENROOM_BGP_PASSWORD"}


def test_layer2_pools_become_mode_l2() -> None:
    text = SEED_003.replace("protocol: bgp", "protocol: layer2")
    done = convert(text)
    assert done.section["mode"] == "l2" and "peers" not in done.section


@pytest.mark.parametrize(("text", "words"), [
    ("kind: Service\n", "no ConfigMap"),
    ("kind: ConfigMap\ndata: {}\n", "no data.config"),
    (SEED_001.replace("protocol: bgp", "protocol: bgp\n    - name: b\n      protocol: layer2\n"
                                       "      addresses: [10.0.9.0/24]"), "one mode"),
], ids=["not-configmap", "no-config", "mixed-protocols"])
def test_refusals_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ConvertError, match=words):
        convert(text)
