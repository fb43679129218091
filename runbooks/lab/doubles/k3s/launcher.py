#!/usr/bin/env python3
"""A DOUBLE of the k3s binary, for the virtual lab only: never install it on a real site.

What the lab's release site serves under k3s's asset names: a launcher of the double
(k3s.py next to this file), which `lab.up` puts into every guest as a module with its bytecode
compiled (runbooks/lab/doubles/k3s/__init__.py), so each `k3s kubectl ...` loads it from the
cache instead of compiling 1,500 lines. Same command line as the double run as a script.
"""

import os
import sys

VERSION = "v1.34.3+k3s1"  # the lab's release site rewrites this line for each version
# K3S_DOUBLE_ROOT: the double's root (tests run it in a directory), "/" in a guest
MODULE_DIR = os.path.join(os.environ.get("K3S_DOUBLE_ROOT", "/"),
                          "usr/local/lib/greenroom-double")

sys.path.insert(0, MODULE_DIR)
try:
    import k3s
except ModuleNotFoundError as exc:
    if exc.name != "k3s":
        raise
    sys.stderr.write(f"k3s (lab double): {MODULE_DIR}/k3s.py is missing; `inv lab.up` puts it "
                     "into every lab guest (this launcher runs only there)\n")
    sys.exit(1)
k3s.VERSION = VERSION
sys.exit(k3s.main(sys.argv))
