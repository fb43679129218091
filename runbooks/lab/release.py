"""The lab's k3s release site: the k3s double served on loopback under k3s's asset names.

`lab.up` starts it on ``http://127.0.0.1:18231`` (loopback: the machine reaches it without
any new route; guests never do, greenroom pushes the files to them). It answers like the
release download site, ``/<version>/<asset>`` (the version may be URL-encoded, ``+`` as
``%2B``), for any version asked:

- ``k3s`` (amd64), ``k3s-arm64``, ``k3s-armhf``: runbooks/lab/doubles/k3s/launcher.py with
  its VERSION line set to the version asked (so versions differ, as real releases do); it runs
  the double (k3s.py) that `lab.up` installs into every guest as a compiled module;
- ``k3s-airgap-images-<arch>.tar`` / ``.tar.gz`` / ``.tar.zst``: a small deterministic tarball;
- ``sha256sum-<arch>.txt``: the SHA-256 of that arch's assets, one ``<hex>  <name>`` line each.

It also answers like MetalLB's repository files for ``inv metallb.fetch``:
``/metallb/<version>/config/manifests/metallb-native.yaml`` is the lab's MetalLB manifest
double (runbooks/lab/doubles/metallb/) with its images tagged ``<version>``.

And like a mirror of `snap download microk8s` results for ``inv microk8s.fetch``:
``/microk8s/<track>/<risk>/{SHA256SUMS, microk8s_<rev>.snap, microk8s_<rev>.assert}`` from
runbooks/lab/doubles/microk8s/snapfiles.py.

``--tamper NAME`` serves NAME with changed bytes but the checksums of the real ones (the
tests' refusal case). Every request is logged to ``--log`` as ``METHOD PATH STATUS``.
Run: ``python3 -m runbooks.lab.release --listen 127.0.0.1:18231 --log FILE``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ADDRESS = "127.0.0.1"
PORT = 18231
URL = f"http://{ADDRESS}:{PORT}"
DOUBLE = Path(__file__).resolve().parent / "doubles" / "k3s" / "k3s.py"
LAUNCHER = DOUBLE.with_name("launcher.py")  # what is served as the binary: it runs DOUBLE
BINARIES = {"amd64": "k3s", "arm64": "k3s-arm64", "arm": "k3s-armhf"}
IMAGE_FORMATS = ("tar.zst", "tar.gz", "tar")
_VERSION = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
METALLB_DOUBLE = Path(__file__).resolve().parent / "doubles" / "metallb" / "metallb-native.yaml"
_METALLB_VERSION = re.compile(r"^v0\.(1[3-9]|[2-9]\d)\.\d+$")


def metallb_asset(parts: list[str]) -> bytes | None:
    """``<version>/config/manifests/metallb-native.yaml`` under ``/metallb/``: the manifest
    double, its images tagged with the version asked."""
    if len(parts) != 4 or parts[1:3] != ["config", "manifests"] \
            or parts[3] != "metallb-native.yaml" or not _METALLB_VERSION.match(parts[0]):
        return None
    return METALLB_DOUBLE.read_text().replace(":v0.14.9", f":{parts[0]}").encode()


def microk8s_asset(parts: list[str]) -> bytes | None:
    """``<track>/<risk>/<name>`` under ``/microk8s/``: the snap download doubles."""
    from runbooks.lab.doubles.microk8s.snapfiles import files

    if len(parts) != 3:
        return None
    return (files(f"{parts[0]}/{parts[1]}") or {}).get(parts[2])


def binary(version: str) -> bytes:
    """The double's launcher, claiming to be `version`."""
    source = LAUNCHER.read_text()
    line = re.search(r'^VERSION = "[^"]*"', source, re.M)
    if line is None:
        raise RuntimeError(f"{LAUNCHER} has no VERSION line")
    return (source[: line.start()] + f'VERSION = "{version}"' + source[line.end():]).encode()


def images_tar(version: str, arch: str) -> bytes:
    """A deterministic tarball standing in for the airgap images of `version`/`arch`."""
    body = (f'[{{"Config": "double.json", "RepoTags": ["docker.io/rancher/mirrored-pause:3.6",'
            f' "docker.io/rancher/mirrored-coredns-coredns:1.12.3"], "Layers": [], '
            f'"double": "k3s {version} {arch}"}}]\n').encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mtime, info.mode = len(body), 0, 0o644
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


@lru_cache(maxsize=64)
def asset(version: str, name: str) -> bytes | None:
    """The bytes of one release asset, or None when the release has no such asset."""
    if not _VERSION.match(version):
        return None
    for arch, binary_name in BINARIES.items():
        if name == binary_name:
            return binary(version)
        for fmt in IMAGE_FORMATS:
            if name == f"k3s-airgap-images-{arch}.{fmt}":
                return compress(images_tar(version, arch), fmt)
        if name == f"sha256sum-{arch}.txt":
            names = [binary_name, *(f"k3s-airgap-images-{arch}.{f}" for f in IMAGE_FORMATS)]
            lines = []
            for item in names:
                data = asset(version, item)
                if data is not None:
                    lines.append(f"{hashlib.sha256(data).hexdigest()}  {item}\n")
            return "".join(lines).encode()
    return None


def compress(data: bytes, fmt: str) -> bytes | None:
    if fmt == "tar":
        return data
    if fmt == "tar.gz":
        return gzip.compress(data, mtime=0)
    if shutil.which("zstd") is None:
        return None  # no zstd on this machine: the release has .tar and .tar.gz only
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, capture_output=True,
                          check=True).stdout


def forget_stale_pins(inventory: Any, log: Callable[[str], None] = print) -> list[str]:
    """Drop the pins of ``<inventory>.k3s.lock`` that this release site no longer serves.

    A lab inventory's lock pins the double (per machine, not committed): when the double
    changes (a new behaviour), its digest changes and the next fetch would rightly refuse it as
    "the release changed since it was pinned". `lab.up` owns the double, so it forgets those
    pins (the next fetch verifies and pins the new files). Only for an inventory whose
    cluster.source is this site; returns the names dropped."""
    cluster = getattr(inventory, "sections", {}).get("cluster")
    if cluster is None or (getattr(cluster, "source", None) or "").rstrip("/") != URL:
        return []
    path = Path(inventory.path)
    lock = path.with_name(path.stem + ".k3s.lock")
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return []
    dropped = []
    for version, pins in (data.get("versions") or {}).items():
        for name, digest in list(pins.items()):
            served = asset(version, name)
            if served is not None and hashlib.sha256(served).hexdigest() != digest:
                del pins[name]
                dropped.append(f"{version}/{name}")
    if dropped:
        tmp = lock.with_name(f".{lock.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(lock)
        log(f"lab: the k3s double changed; forgot its old pins in {lock.name}: "
            f"{', '.join(dropped)} (the next fetch pins the new files)")
    return dropped


class ReleaseHandler(BaseHTTPRequestHandler):
    """GET/HEAD /<version>/<asset>; 404 for anything else."""

    log_path = "/dev/null"
    tamper: frozenset[str] = frozenset()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self, send_body: bool) -> None:
        parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
        if parts and parts[0] == "metallb":
            data = metallb_asset(parts[1:])
        elif parts and parts[0] == "microk8s":
            data = microk8s_asset(parts[1:])
        else:
            data = asset(parts[-2], parts[-1]) if len(parts) >= 2 else None
        if data is not None and parts[-1] in self.tamper:
            data = data + b"\n# tampered\n"
        with open(self.log_path, "a") as out:
            out.write(f"{self.command} {self.path} {200 if data is not None else 404}\n")
        if data is None:
            body = b"Not Found\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)


def make_server(listen: str, log: str, tamper: tuple[str, ...] = ()) -> ThreadingHTTPServer:
    """A release-site server bound to `listen` (HOST:PORT); call serve_forever()."""
    host, _, port = listen.rpartition(":")
    handler = type("Handler", (ReleaseHandler,), {"log_path": log,
                                                  "tamper": frozenset(tamper)})
    return ThreadingHTTPServer((host, int(port)), handler)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default=f"{ADDRESS}:{PORT}")
    parser.add_argument("--log", default="/dev/null")
    parser.add_argument("--tag", default="", help="ignored; marks the process as the lab's")
    parser.add_argument("--tamper", action="append", default=[])
    args = parser.parse_args()
    make_server(args.listen, args.log, tuple(args.tamper)).serve_forever()


if __name__ == "__main__":
    main()
