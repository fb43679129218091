"""The keeper's wire format: one request and one answer per Unix socket connection.

A message is a JSON header and any number of byte strings ("blobs": a command's stdin,
stdout, stderr), each sent as a 4-byte big-endian length and its bytes; the header says
how many blobs follow. Bytes travel as they are, never through JSON.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAX_HEADER = 1 << 20  # a header is small; anything larger is not ours
MAX_BLOB = 1 << 30
_LENGTH = struct.Struct(">I")


class WireError(Exception):
    """The other side closed, or sent something that is not a message."""


def send(sock: socket.socket, header: dict[str, Any], blobs: tuple[bytes, ...] = ()) -> None:
    """Send one message."""
    text = json.dumps({**header, "blobs": len(blobs)}).encode()
    parts = [_LENGTH.pack(len(text)), text]
    for blob in blobs:
        parts += [_LENGTH.pack(len(blob)), blob]
    sock.sendall(b"".join(parts))


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[bytes]]:
    """Receive one message: (header, blobs); WireError when there is none."""
    size = _length(sock, MAX_HEADER)
    try:
        header = json.loads(_exactly(sock, size))
    except ValueError as exc:
        raise WireError("not a JSON header") from exc
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), int):
        raise WireError("not a message header")
    blobs = [_exactly(sock, _length(sock, MAX_BLOB)) for _ in range(header.pop("blobs"))]
    return header, blobs


def _length(sock: socket.socket, limit: int) -> int:
    (size,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    if size > limit:
        raise WireError(f"a part of {size} bytes is larger than {limit}")
    return int(size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    left = size
    while left:
        try:
            chunk = sock.recv(min(left, 1 << 20))
        except OSError as exc:
            raise WireError(str(exc)) from exc
        if not chunk:
            raise WireError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
