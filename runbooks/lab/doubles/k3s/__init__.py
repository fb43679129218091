"""The lab's k3s double (k3s.py) and its launcher (launcher.py): see k3s.py.

`install_module` puts the double into a guest's root as a module, its bytecode compiled, for
the launcher the release site serves as the k3s binary (a kubectl call then loads cached
bytecode instead of compiling the double at every start).
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "usr/local/lib/greenroom-double/k3s.py"  # in the guest; launcher.py's MODULE_DIR


def install_module(root: Path) -> bool:
    """Put k3s.py at MODULE under the guest's ``root`` and compile its bytecode there
    (atomically; nothing written when both are current). Returns whether anything changed.

    The bytecode is compiled with this interpreter; it serves the guest when the guest's
    python3 has the same version (the lab's rootfs is Debian's, like this machine's), else the
    guest's Python compiles and caches it itself at the first import."""
    source = (HERE / "k3s.py").read_bytes()
    dest = root / MODULE
    changed = False
    if not dest.exists() or dest.read_bytes() != source:
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        partial.write_bytes(source)
        os.chmod(partial, 0o644)
        partial.replace(dest)
        changed = True
    cached = Path(importlib.util.cache_from_source(str(dest)))
    if changed or not cached.exists() or cached.stat().st_mtime < dest.stat().st_mtime:
        py_compile.compile(str(dest), cfile=str(cached), dfile=f"/{MODULE}", doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
        changed = True
    return changed

