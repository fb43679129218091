"""Make files/demo/lab-images/: a tiny OCI image layout (one linux/arm64 image of a few
hundred bytes) that stands in for the demo's images on the virtual lab, which has no
internet. Deterministic: running it again gives the same bytes and digests. It also writes
files/demo/lab-images.yaml (the list) and files/demo/lab-images.lock (the digests).

    python files/demo/make_lab_images.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYOUT = HERE / "lab-images"
SOURCE = "greenroom.invalid/lab/hello:1"
TARGET = "lab/hello:1"


def blob(data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = LAYOUT / "blobs" / "sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def layer() -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = b"hello from the greenroom lab\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(tar_bytes)
    return out.getvalue(), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def main() -> None:
    compressed, diff_id = layer()
    layer_digest = blob(compressed)
    config = json.dumps({"architecture": "arm64", "os": "linux",
                         "config": {"Cmd": ["cat", "/hello.txt"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}},
                        sort_keys=True).encode()
    config_digest = blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(compressed)}]}, sort_keys=True).encode()
    manifest_digest = blob(manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest), "platform": {"os": "linux", "architecture": "arm64"},
        "annotations": {"org.opencontainers.image.ref.name": SOURCE,
                        "io.containerd.image.name": SOURCE,
                        "dev.greenroom.target": TARGET}}]}
    (LAYOUT / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (LAYOUT / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
    (HERE / "lab-images.yaml").write_text(
        "# The virtual lab's stand-in for the demo's images (the lab has no internet): one\n"
        "# tiny linux/arm64 image, carried in files/demo/lab-images/ (made by\n"
        "# files/demo/make_lab_images.py) and pushed by demo.reset when missing.\n"
        "platforms: [linux/arm64]\n"
        f"images:\n  - ref: {SOURCE}\n    as: {TARGET}\n")
    lock = {"version": 1, "images": {SOURCE: {
        "digest": manifest_digest, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "platforms": {"linux/arm64": manifest_digest},
        "pushed": {"linux/arm64": manifest_digest}}}}
    (HERE / "lab-images.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
