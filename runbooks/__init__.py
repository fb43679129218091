"""greenroom's runbooks. Layers: core (the engine) <- common (what several runbooks share)
<- one package per runbook; the virtual lab (lab) plugs in from the CLI layer (tasks.py).

Importing this package registers the inventory declarations of runbooks/common/schema/, so
every inventory loaded anywhere (tasks, tests, benchmarks) is validated the same way.
"""

from runbooks.common import schema as _schema  # noqa: F401 - registers sections and vars
