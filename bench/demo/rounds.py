"""Round trips per host of one whole `inv` command: every remote command it sends, when.

Run as root from the repository root on an up lab, under the lab lock:
    python3 bench/demo/rounds.py [--list] [--dump FILE] -- demo.reset -i hosts/lab.yaml
Runs the command in this process (as `inv` would) with the engine's session counted: per
host the connection, the commands (channels) and the ROUNDS (groups of commands that
overlap in time: what the host's latency is paid for), and with --list every command with
its start and end (seconds from the process start) and its first words.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START = time.monotonic()
sys.path.insert(0, str(REPO))


def rounds_of(spans: list[tuple[float, float]]) -> int:
    """How many groups of overlapping (start, end) spans: the round trips waited for."""
    count, end = 0, -1.0
    for start, stop in sorted(spans):
        if start > end:
            count += 1
            end = stop
        else:
            end = max(end, stop)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="every command, in order")
    parser.add_argument("--dump", default=None, metavar="FILE",
                        help="also write every command's whole text to FILE, per host")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then inv's arguments")
    args = parser.parse_args()
    argv = [a for a in args.command if a != "--"]

    from runbooks.core import session as core_session

    lock = threading.Lock()
    seen: list[tuple[str, float, float, str]] = []  # host, start, end, what
    exec_raw = core_session.Session._exec_raw  # noqa: SLF001
    session_of = core_session.Connector.session

    def counted(self, line, data, timeout=None):  # noqa: ANN001, ANN202
        began = time.monotonic() - START
        try:
            return exec_raw(self, line, data, timeout)
        finally:
            with lock:
                seen.append((self.host.name, began, time.monotonic() - START, line))

    def opened(self, host):  # noqa: ANN001, ANN202
        began = time.monotonic() - START
        known = host.name in self._sessions  # noqa: SLF001
        try:
            return session_of(self, host)
        finally:
            if not known:
                with lock:
                    seen.append((host.name, began, time.monotonic() - START, "(connect)"))

    core_session.Session._exec_raw = counted  # type: ignore[method-assign]  # noqa: SLF001
    core_session.Connector.session = opened  # type: ignore[method-assign]

    from invoke.main import program

    sys.argv = ["inv", *argv]
    code = 0
    try:
        program.run()
    except SystemExit as exc:
        code = int(exc.code or 0)
    total = time.monotonic() - START
    hosts = sorted({h for h, *_ in seen})
    print(f"\n{' '.join(argv)}: exit {code}, {total:.2f} s in all; first remote command at "
          f"{min((s for _h, s, _e, _w in seen), default=0):.2f} s")
    print(f"{'host':8} {'connect':>8} {'commands':>8} {'rounds':>6}  first..last")
    for host in hosts:
        mine = [(s, e, w) for h, s, e, w in seen if h == host]
        commands = [(s, e) for s, e, w in mine if w != "(connect)"]
        connect = next((e - s for s, e, w in mine if w == "(connect)"), 0.0)
        print(f"{host:8} {connect:8.2f} {len(commands):8} {rounds_of(commands):6}  "
              f"{min(s for s, _e, _w in mine):.2f}..{max(e for _s, e, _w in mine):.2f}")
    if args.list:
        for host, start, end, what in sorted(seen, key=lambda x: (x[0], x[1])):
            words = " ".join(what.replace("sh -c ", "", 1).split())[:90]
            print(f"{host:8} {start:6.2f} {end:6.2f}  {words}")
    if args.dump:
        with open(args.dump, "w") as out:
            for host, start, end, what in sorted(seen, key=lambda x: (x[0], x[1])):
                out.write(f"===== {host} {start:.2f}..{end:.2f}\n{what}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
