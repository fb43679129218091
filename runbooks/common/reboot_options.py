"""The options of every task that may reboot hosts (see runbooks.common.reboot), in a module
of their own so that building the task list imports nothing of the engine."""

from __future__ import annotations

DEFAULT_TIMEOUT = 300.0
# name -> (default, help), for runbook_task(extra=...)
REBOOT_OPTIONS = {
    "reboot": (False, "Reboot every host even when no change needs it, then verify."),
    "no_reboot": (False, "Never reboot: a host that needs a reboot is reported failed with "
                         "'reboot needed'."),
    "serial": (0, "Reboot at most N hosts at the same time (0: no limit)."),
    "timeout": (int(DEFAULT_TIMEOUT), "Seconds to wait for a rebooted host to answer SSH "
                                      "again."),
}
