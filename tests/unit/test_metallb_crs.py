"""MetalLB's objects rendered from the inventory, and the lab's speaker double reading them."""

from __future__ import annotations

import dataclasses

import pytest

from runbooks.common.bgp import site_plan
from runbooks.lab.doubles import bgp_speaker
from runbooks.metallb import crs
from tests.unit.bgp_site import load_site


def _objects(password: str | None = None):  # type: ignore[no-untyped-def]
    inventory, metallb = load_site()
    site = site_plan(inventory)
    return crs.render(metallb, {r.name: r for r in site.routers}, password)


def test_bgp_mode_objects_in_apply_order() -> None:
    objects = _objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("IPAddressPool", "default"), ("IPAddressPool", "extra"), ("BGPPeer", "edge"),
        ("BGPAdvertisement", "greenroom")]
    peer = objects[2]
    assert peer["apiVersion"] == "metallb.io/v1beta2"
    assert peer["spec"] == {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.168.10.6"}
    assert objects[3]["spec"] == {"ipAddressPools": ["default", "extra"]}
    assert all(o["metadata"]["namespace"] == "metallb-system" for o in objects)


def test_password_goes_to_a_secret_the_peer_references() -> None:
    objects = _objects("s3cret-pw")
    secret, peer = objects[0], objects[3]
    assert secret["kind"] == "Secret" and secret["type"] == "kubernetes.io/basic-auth"
    assert secret["stringData"] == {"password": "s3cret-pw"}
    assert peer["spec"]["passwordSecret"] == {"name": "greenroom-bgp-edge",
                                              "namespace": "metallb-system"}
    assert "password" not in peer["spec"]


def test_l2_mode_has_no_peer_and_an_l2_advertisement() -> None:
    _, metallb = load_site()
    l2 = dataclasses.replace(metallb, mode="l2", peers=(), asn=None)
    assert [o["kind"] for o in crs.render(l2, {})] == [
        "IPAddressPool", "IPAddressPool", "L2Advertisement"]


def test_speaker_double_peers_like_metallb_frr_mode() -> None:
    text = bgp_speaker.render_config("rp0", "192.168.10.3", _objects("s3cret-pw"))
    assert "router id 192.168.10.3;" in text
    assert "local 192.168.10.3 as 64513;" in text
    assert "neighbor 192.168.10.6 as 64512;" in text
    assert 'password "s3cret-pw";' in text
    assert "192.168.10.8/30{32,32}, 192.168.20.0/28{32,32}" in text
    assert "import none" in text


def test_speaker_double_refuses_a_missing_secret() -> None:
    objects = [o for o in _objects("s3cret-pw") if o["kind"] != "Secret"]
    with pytest.raises(bgp_speaker.SpeakerDoubleError, match="passwordSecret"):
        bgp_speaker.render_config("rp0", "192.168.10.3", objects)


def test_speaker_double_reads_hold_time_and_multihop() -> None:
    objects = _objects()
    objects[2]["spec"].update(holdTime="90s", ebgpMultiHop=True)
    text = bgp_speaker.render_config("rp0", "192.168.10.3", objects)
    assert "hold time 90;" in text and "multihop;" in text
