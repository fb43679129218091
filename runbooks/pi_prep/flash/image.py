"""Image readers: a raw disk image streamed from `.img`, `.img.xz`, `.img.zst` or a `.zip`
holding one image, in fixed-size chunks (never whole in memory).

`inspect_image(path)` checks the file and learns the uncompressed size where the format
records it (xz index, zstd frame header, zip directory). `open_image(info)` is the stream of
bytes (read into the caller's own buffers); `chunks(info)` yields them.
xz and zstd are decompressed by Debian's own `xz` and `zstd` in a separate process, which
runs beside our writer on another core (as `xz -dc | dd` does).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 4 * 1024 * 1024
KINDS = {".img": "raw", ".xz": "xz", ".zst": "zst", ".zip": "zip"}
TOOLS = {"xz": "xz-utils", "zstd": "zstd"}


class ImageError(ValueError):
    """The image cannot be read; the message says why and what to do."""


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    kind: str  # raw, xz, zst, zip
    size: int | None  # uncompressed bytes, when the format records it
    member: str | None = None  # the image inside a zip


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in KINDS.items():
        if name.endswith(suffix):
            if kind in ("xz", "zst") and not name.endswith(".img" + suffix):
                break
            return kind
    raise ImageError(f"{path}: unknown image type; give a .img, .img.xz, .img.zst or a .zip "
                     "holding one .img")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ImageError(f"`{name}` is not installed; install Debian's {TOOLS[name]} package")
    return found


def _xz_size(path: Path) -> int | None:
    out = subprocess.run([_tool("xz"), "--robot", "--list", str(path)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise ImageError(f"{path}: not a valid xz file ({out.stderr.strip()}); download it "
                         "again and check its sha256")
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "file" and len(fields) > 4 and fields[4].isdigit():
            return int(fields[4])
    return None


def _zstd_size(path: Path) -> int | None:
    out = subprocess.run([_tool("zstd"), "-lv", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise ImageError(f"{path}: not a valid zstd file ({out.stderr.strip()}); download it "
                         "again and check its sha256")
    found = re.search(r"Decompressed Size:.*\((\d+) B\)", out.stdout)
    return int(found.group(1)) if found else None


def _zip_member(path: Path) -> zipfile.ZipInfo:
    try:
        with zipfile.ZipFile(path) as archive:
            images = [i for i in archive.infolist()
                      if not i.is_dir() and i.filename.lower().endswith(".img")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImageError(f"{path}: not a readable zip ({exc}); download it again") from None
    if len(images) != 1:
        found = ", ".join(i.filename for i in images) or "none"
        raise ImageError(f"{path}: a zip must hold exactly one .img (found: {found}); "
                         "unpack it and give the image itself")
    return images[0]


def inspect_image(path: str | Path) -> ImageInfo:
    """The image at `path`: its kind and uncompressed size (None when not recorded)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the path")
    kind = _kind(path)
    if kind == "raw":
        return ImageInfo(path, kind, path.stat().st_size)
    if kind == "xz":
        return ImageInfo(path, kind, _xz_size(path))
    if kind == "zst":
        return ImageInfo(path, kind, _zstd_size(path))
    member = _zip_member(path)
    return ImageInfo(path, kind, member.file_size, member.filename)


@contextmanager
def _pipe(command: list[str], path: Path) -> Iterator[Any]:
    """The stdout of a decompressor; ImageError when it fails, killed if we stop early."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc.stdout
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        error = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise ImageError(f"{path}: decompression failed ({error or f'exit {code}'}); the "
                         "file is damaged or truncated: download it again")


@contextmanager
def open_image(info: ImageInfo) -> Iterator[Any]:
    """The image's uncompressed bytes as a stream to read (or readinto) from."""
    if info.kind == "raw":
        with open(info.path, "rb", buffering=0) as raw:
            yield raw
    elif info.kind in ("xz", "zst"):
        command = [_tool("xz"), "-dc", "-T0"] if info.kind == "xz" else [_tool("zstd"), "-dcq"]
        with _pipe([*command, str(info.path)], info.path) as out:
            yield out
    else:
        try:
            with zipfile.ZipFile(info.path) as archive, \
                    archive.open(info.member or "") as member:
                yield member
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ImageError(f"{info.path}: the zip is damaged ({exc}); download it "
                             "again") from None


def chunks(info: ImageInfo) -> Iterator[bytes]:
    """The image's uncompressed bytes, CHUNK at a time."""
    with open_image(info) as stream:
        while chunk := stream.read(CHUNK):
            yield chunk
