"""greenroom's runbooks. Layers: core (the engine) <- common (what several runbooks share)
<- one package per runbook; the virtual lab (lab) plugs in from the CLI layer (tasks.py).

The inventory declarations of runbooks/common/schema/ are named here, so every inventory
read anywhere (tasks, tests, benchmarks) is validated the same way; they are imported only
when the first inventory is read (`inv --list` reads none and does not pay for them).
"""

from runbooks.core.inventory_schema import declare_from as _declare_from

_declare_from("runbooks.common.schema")
_declare_from("runbooks.core.keep_schema")  # the `ssh:` section (kept connections)
