"""The lock file: what each listed image resolved to upstream, and what went under its tag.

JSON, one entry per source reference:
`{"registry.k8s.io/pause:3.6": {"digest": <upstream digest>, "mediaType": ...,
  "platforms": {"linux/arm64": <manifest digest>, ...},
  "pushed": {"linux/arm64": <digest under the tag>, "all": <index digest>}}}`
A re-run compares the target's tag with `pushed` (one HEAD per image) and touches the
upstream registry only for images that differ; `--refresh` re-resolves every tag upstream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class LockError(ValueError):
    """The lock file is unreadable."""


def lock_path_for(images_path: Path) -> Path:
    """The default lock beside an image list: images.yaml -> images.lock."""
    return images_path.with_suffix(".lock")


def read_lock(path: Path) -> dict:
    """The lock's entries ({} when the file does not exist yet)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LockError(f"{path}: unreadable lock file ({exc}); delete it to re-resolve "
                        "every image upstream") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images", {}), dict):
        raise LockError(f"{path}: expected {{\"images\": {{...}}}}; delete it to rebuild it")
    return dict(doc.get("images", {}))


def write_lock(path: Path, entries: dict) -> bool:
    """Write the lock atomically when its content changed; returns whether it was written."""
    text = json.dumps({"version": 1, "images": entries}, indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    import tempfile  # only when writing: a no-op run never pays for it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
