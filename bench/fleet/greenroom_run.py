"""Run the benchmark plan with greenroom's own command line: `python greenroom_run.py -i INV`."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from invoke import Collection, Program  # noqa: E402
from plan import RUNBOOK  # noqa: E402

from runbooks.core.cli import runbook_task  # noqa: E402
from runbooks.lab.access import plug_in  # noqa: E402

plug_in()  # as tasks.py does: the engine reaches the lab's hosts with the lab's key

ns = Collection()
ns.add_task(runbook_task(RUNBOOK, "Prepare the benchmark boards.", default=True))
Program(namespace=ns, name="greenroom-bench", binary="greenroom-bench").run(
    ["greenroom-bench", "prepare-board", *sys.argv[1:]])
