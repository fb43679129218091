"""greenroom lab DOUBLE of what `snap download microk8s --channel=C` leaves: a small snap file
and its assertion file, deterministic per channel, served by the lab's release site
(runbooks/lab/release.py, ``/microk8s/<track>/<risk>/``) next to a SHA256SUMS file.

The assertion file holds, like the real one, a ``snap-revision`` assertion stating the
revision and the snap's SHA3-384 (URL-safe base64, no padding), after the account-key and
snap-declaration assertions (their signatures are placeholders: the double of `snap ack` on
the lab's nodes checks the format and the digest, not Canonical's signature).
"""

from __future__ import annotations

import base64
import hashlib
import re

CHANNEL = re.compile(r"^(latest|\d+\.\d+)/(stable|candidate|beta|edge)$")
SNAP_ID = "EaXqgt1lyCaxKaQCU349mlodBkDCXRcg"


def revision(channel: str) -> str:
    """A stable revision number per channel (channels differ, as in the store)."""
    return str(7000 + int(hashlib.sha256(channel.encode()).hexdigest(), 16) % 1000)


def snap_bytes(channel: str) -> bytes:
    rev = revision(channel)
    head = f"greenroom lab DOUBLE: microk8s snap, channel {channel}, revision {rev}\n"
    return head.encode() + bytes(range(256)) * 16


def assertion(channel: str) -> bytes:
    data = snap_bytes(channel)
    sha3 = base64.urlsafe_b64encode(hashlib.sha3_384(data).digest()).decode().rstrip("=")
    sig = "AcLBUgQAAQoABgUCZ3JlZW5yb29tLWxhYi1kb3VibGU"  # placeholder, not a signature
    return (f"type: account-key\nauthority-id: canonical\npublic-key-sha3-384: double\n"
            f"account-id: canonical\nname: store\nsince: 2016-04-01T00:00:00.0Z\n"
            f"body-length: 0\nsign-key-sha3-384: double\n\n{sig}\n\n"
            f"type: snap-declaration\nauthority-id: canonical\nseries: 16\nsnap-id: {SNAP_ID}\n"
            f"publisher-id: canonical\nsnap-name: microk8s\ntimestamp: 2026-01-01T00:00:00Z\n"
            f"sign-key-sha3-384: double\n\n{sig}\n\n"
            f"type: snap-revision\nauthority-id: canonical\nsnap-sha3-384: {sha3}\n"
            f"developer-id: canonical\nsnap-id: {SNAP_ID}\nsnap-revision: {revision(channel)}\n"
            f"snap-size: {len(data)}\ntimestamp: 2026-01-01T00:00:00Z\n"
            f"sign-key-sha3-384: double\n\n{sig}\n").encode()


def files(channel: str) -> dict[str, bytes] | None:
    """{name: bytes} of the channel's directory on the release site, SHA256SUMS included;
    None for a channel that is not one."""
    if not CHANNEL.match(channel):
        return None
    rev = revision(channel)
    out = {f"microk8s_{rev}.snap": snap_bytes(channel),
           f"microk8s_{rev}.assert": assertion(channel)}
    out["SHA256SUMS"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n"
                                for n, d in out.items()).encode()
    return out
