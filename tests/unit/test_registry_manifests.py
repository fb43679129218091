"""Pure tests: platform selection, media types, filtered indexes."""

from __future__ import annotations

import json

import pytest

from runbooks.registry.manifests import (
    DOCKER_LIST,
    ManifestError,
    filtered_index,
    media_type_of,
    parse_platform,
    parse_platforms,
    select_children,
)


def index(*plats):
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"digest": f"sha256:{i}", "platform": p} for i, p in enumerate(plats)]}).encode()


AMD = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
ARM7 = {"os": "linux", "architecture": "arm", "variant": "v7"}


@pytest.mark.parametrize("want,entries,picked", [
    ("linux/arm64", [AMD, ARM64], 1),
    ("linux/arm64/v8", [AMD, {"os": "linux", "architecture": "arm64"}], 1),
    ("linux/arm/v7", [AMD, ARM7], 1),
    ("linux/amd64", [ARM64, AMD], 1),
], ids=["arm64-v8", "v8-vs-none", "arm-v7", "amd64"])
def test_select_platform(want, entries, picked):
    chosen = select_children(index(*entries), parse_platforms(want))
    assert [c["digest"] for c in chosen] == [f"sha256:{picked}"]


def test_missing_platform_names_what_is_there():
    with pytest.raises(ManifestError, match=r"no linux/s390x .*has: linux/amd64, linux/arm64/v8"):
        select_children(index(AMD, ARM64), parse_platforms("linux/s390x"))


def test_filtered_index_keeps_other_fields():
    body = index(AMD, ARM64, ARM7)
    chosen = select_children(body, parse_platforms("linux/arm/v7,linux/arm64"))
    doc = json.loads(filtered_index(body, chosen))
    assert doc["mediaType"] == DOCKER_LIST and len(doc["manifests"]) == 2


@pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d"])
def test_bad_platform(text):
    with pytest.raises(ManifestError, match="os/arch"):
        parse_platform(text)


def test_media_type_from_field_header_or_shape():
    assert media_type_of(index(AMD), None) == DOCKER_LIST
    assert media_type_of(b'{"schemaVersion":2,"manifests":[]}', None).endswith("index.v1+json")
    with pytest.raises(ManifestError, match="schema 1"):
        media_type_of(b'{"schemaVersion":1}', None)
    with pytest.raises(ManifestError, match="not valid JSON"):
        media_type_of(b"<html>", "text/html")
