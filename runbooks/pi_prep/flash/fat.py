"""Files in a FAT partition of a device or image, through mtools (no mount, no vfat in the
kernel needed): `FatPartition("/dev/sdb", offset)` reads, lists and writes files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile


class FatError(RuntimeError):
    """mtools failed; the message carries its error."""


class FatPartition:
    """The FAT filesystem starting `offset` bytes into `path` (a device or image file)."""

    def __init__(self, path: str, offset: int):
        if shutil.which("mcopy") is None:
            raise FatError("mtools is not installed; install Debian's mtools package")
        self.path = path
        self.offset = offset
        self.image = f"{path}@@{offset}"

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="1")
        out = subprocess.run([*args], input=data, capture_output=True, env=env)
        if out.returncode != 0:
            raise FatError(f"{args[0]} on {self.path} (FAT at byte {self.offset}) failed: "
                           f"{out.stderr.decode(errors='replace').strip()}")
        return out.stdout

    def names(self, folder: str = "") -> list[str]:
        """Names in `folder` (root by default), without the '::/' prefix."""
        try:
            out = self._run("mdir", "-b", "-i", self.image, f"::/{folder}")
        except FatError:
            return []
        prefix = f"::/{folder.strip('/') + '/' if folder.strip('/') else ''}"
        return [line[len(prefix):].rstrip("/") for line in out.decode().splitlines()
                if line.startswith(prefix) and line[len(prefix):]]

    def read(self, name: str) -> bytes | None:
        """The content of file `name`, or None when there is no such file."""
        parent, _, base = name.rpartition("/")
        if base not in self.names(parent):
            return None
        return self._run("mcopy", "-n", "-i", self.image, f"::/{name}", "-")

    def write(self, name: str, content: bytes) -> None:
        """Create or replace file `name` (its folder is created when missing)."""
        parent, _, base = name.rpartition("/")
        if parent and parent.split("/")[-1] not in self.names(parent.rpartition("/")[0]):
            self._run("mmd", "-i", self.image, f"::/{parent}")
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(content)
            tmp.flush()
            self._run("mcopy", "-o", "-i", self.image, tmp.name, f"::/{name}")
