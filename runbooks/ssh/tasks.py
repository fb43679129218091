"""ssh: see and close the SSH connections kept open between runs (60 s by default; inventory
`ssh: {keep: 0}` or GREENROOM_SSH_KEEP=0 turns keeping off)."""

from __future__ import annotations

from invoke import Collection, task


@task(help={"json": "Print the keepers and their connections as JSON (for scripts)."})
def status(c, json_=False):
    """List the kept SSH connections: host, idle and age in seconds; the keeper's pid."""
    import json

    from runbooks.core.keep_client import ask, running_keepers

    found = [answer for answer in map(lambda path: ask(path, "status"), running_keepers())
             if answer is not None]
    if json_:
        print(json.dumps({"keepers": found}, indent=2))
        return
    if not found:
        print("no connections kept (no keeper running)")
        return
    for keeper in found:
        rows = keeper["connections"]
        print(f"keeper pid {keeper['pid']}: {len(rows)} connection(s), exits after "
              f"{keeper['keep']:g}s without requests")
        if rows:
            print(f"  {'host':16} {'address':22} {'idle':>7} {'age':>7}")
        for row in rows:
            print(f"  {row['host']:16} {row['user'] or '-'}@{row['address']:20} "
                  f"{row['idle']:6.1f}s {row['age']:6.1f}s")


@task(help={})
def close(c):
    """Close every kept SSH connection and stop the keeper (the next run connects anew)."""
    import time

    from runbooks.core.keep_client import ask, running_keepers

    stopped = [answer["pid"] for answer in map(lambda path: ask(path, "stop"),
                                               running_keepers()) if answer is not None]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in stopped):
        time.sleep(0.05)
    print(f"stopped {len(stopped)} keeper(s)" if stopped else "no keeper was running")


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


ns = Collection("ssh")
ns.add_task(status)
ns.add_task(close)
