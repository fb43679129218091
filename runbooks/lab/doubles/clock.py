"""DOUBLE of a host's clock and of chronyd's view of it, for the virtual lab.

Guests share the machine's kernel clock and have no CAP_SYS_TIME, so they can neither be set
back nor stepped, and chrony's unit is skipped there (ConditionCapability). The double keeps
a per-guest offset in OFFSET_FILE: the guest's "clock" is the real clock plus that offset.
Only the three commands below are doubled; chrony's configuration files are written for
real by the runbooks. A test sets a clock back with `echo -3600 > OFFSET_FILE`.
"""

from __future__ import annotations

OFFSET_FILE = "/var/lib/greenroom-double/clock-offset"

# seconds since the epoch, as `date +%s.%N` prints it, shifted by the double's offset
READ = (f"awk -v o=\"$(cat {OFFSET_FILE} 2>/dev/null || echo 0)\" -v s=\"$(date +%s.%N)\" "
        "'BEGIN {printf \"%.3f\\n\", s + o}'")

# what `chronyc -n -c tracking` would print: reference id, reference address, stratum, ...,
# leap status last. The reference is the first server of greenroom's chrony sources (the
# real file the runbook wrote), or this host itself with a local stratum (a time server);
# "Normal" when the doubled clock has no offset, else "Not synchronised".
SYNC = (f"o=$(cat {OFFSET_FILE} 2>/dev/null || echo 0); "
        "ref=$(awk '$1 == \"server\" {print $2; exit}' /etc/chrony/sources.d/*.sources "
        "2>/dev/null); "
        "if [ -z \"$ref\" ] && grep -qs '^local stratum' /etc/chrony/conf.d/*.conf; "
        "then ref=127.127.1.1; fi; "
        "[ -n \"$ref\" ] || exit 1; "
        "leap=$(awk -v o=\"$o\" 'BEGIN {print (o < 0.5 && o > -0.5) ? \"Normal\" : "
        "\"Not synchronised\"}'); "
        "echo \"7F7F0101,$ref,10,0,0,0,0,0,0,0,0,0,0,$leap\"")


def set_command(epoch: float) -> str:
    """Step the doubled clock to `epoch` (what `date -u -s @EPOCH` does to a real one)."""
    return (f"mkdir -p {OFFSET_FILE.rsplit('/', 1)[0]} && "
            f"awk -v t={epoch:.3f} -v s=\"$(date +%s.%N)\" "
            f"'BEGIN {{o = t - s; if (o < 1 && o > -1) o = 0; printf \"%.3f\\n\", o}}' "
            f"> {OFFSET_FILE}.tmp && mv {OFFSET_FILE}.tmp {OFFSET_FILE}")
