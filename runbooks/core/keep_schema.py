"""The inventory's `ssh:` section: how the engine's SSH connections behave for this site.

    ssh:
      keep: 60   # seconds a connection stays open after a run, for the next one (0: off;
                 # the default when the section or key is absent is 60)

`GREENROOM_SSH_KEEP=SECONDS` in the environment overrides `keep` (see keep_client).
"""

from runbooks.core.inventory_schema import Field, Table, register_section

KEEP_MAX = 86400  # a day: a kept connection is for the next run, not for ever

register_section("ssh", schema=Table({
    "keep": Field(int, "the seconds a connection stays open after a run (default 60; 0: off)",
                  low=0, high=KEEP_MAX),
}, what="SSH connection settings such as {keep: 60}"))
