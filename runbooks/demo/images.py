"""demo.reset's images phase: images missing from the registry pushed from an OCI layout.

When the registry check finds listed images missing or with another digest, and the demo
section names `images_from` (a layout written by `registry.save`, carried to the venue), the
layout is pushed with registry.load through an SSH tunnel to the registry's VLAN address
(the operator's machine often has no route to the VLAN). Nothing comes from the internet.
"""

from __future__ import annotations

import io
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.common.demo_section import section_of
from runbooks.demo.order import load

if TYPE_CHECKING:
    from runbooks.core.inventory import Inventory
    from runbooks.core.session import Session

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def tunnel(session: Session, host: str, port: int) -> Iterator[int]:
    """A local port on 127.0.0.1 forwarded to host:port as seen from the session's host."""
    transport = session.connection.transport
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def pump(client: socket.socket) -> None:
        try:
            channel = transport.open_channel("direct-tcpip", (host, port),
                                             client.getpeername())
        except Exception:  # noqa: BLE001 - the client sees the connection close
            client.close()
            return
        try:
            while not stop.is_set():
                ready, _, _ = select.select([client, channel], [], [], 0.5)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in ready:
                    data = channel.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except OSError:
            pass
        finally:
            channel.close()
            client.close()

    def accept() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([server], [], [], 0.2)
            if ready:
                client, _ = server.accept()
                threading.Thread(target=pump, args=(client,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(2)
        server.close()


def layout_dir(inventory: Inventory) -> Path | None:
    section = section_of(inventory)
    if not section.images_from:
        return None
    path = Path(section.images_from).expanduser()
    return path if path.is_absolute() else REPO / path


def push_missing(inventory: Inventory, session: Session, check: bool) -> tuple[bool, str]:
    """Push the layout when listed images are missing: (changed, what happened)."""
    probe = load("runbooks.registry.demo_hooks:CHECK")
    host = inventory.hosts[inventory.registry.host]  # type: ignore[union-attr]
    from runbooks.core.facts import gather

    facts = gather(session, probe.facts(host, inventory))
    checks = probe.evaluate(host, inventory, facts)
    images = [c for c in checks if c.name == "images"]
    if not images or images[0].ok:
        return False, "every listed image is there"
    layout = layout_dir(inventory)
    if layout is None:
        return False, ("images missing and no demo.images_from layout to push them from; "
                       "run inv registry.load-images where there is internet")
    if check:
        return True, f"would push the images of {layout}: {images[0].detail}"
    endpoint = load("runbooks.registry.demo_hooks:expected")(
        str(inventory.path), load("runbooks.registry.demo_hooks:demo_images")(inventory)
    ).endpoint
    address, _, port = endpoint.rpartition(":")
    run = load("runbooks.registry.run")
    with tunnel(session, address, int(port)) as local:
        summary: Any = run.load(run.Options(to=f"127.0.0.1:{local}", jobs=4), str(layout),
                                out=io.StringIO())
    if summary.failed:
        raise RuntimeError("; ".join(f"{name}: {why}" for name, why in summary.failed))
    return True, f"pushed {summary.copied} image(s) from {layout}"
