"""The Fabric/Paramiko floor, tuned one step at a time: connect to every host, run `true`.

`python tuned_floor.py LEVEL HOSTS_JSON KNOWN_HOSTS` where HOSTS_JSON is
`[[address, key_filename], ...]`. Each level keeps the ones before it:

0  untuned: `fabric_floor.py` as it is (a Fabric Connection with its own Config per host,
   `conn.run`, Fabric's default of auto-adding unknown host keys)
1  strict host keys: the lab's known_hosts (parsed once), unknown keys refused, the key type
   pinned to the known one (what greenroom does; a cost, not a gain: the floor must not
   check less than greenroom)
2  the command on a raw Paramiko channel instead of Invoke's runner (no pty or stdin
   threads)
3  TCP_NODELAY on the socket (no delayed-ACK wait between small packets)
4  algorithms: nothing weaker than OpenSSH's defaults is offered (no SHA-1 key exchange or
   signatures, no CBC, no MD5/SHA-1-96 MACs), curve25519 key exchange, ssh-ed25519 host
   key, aes128-ctr with hmac-sha2-256 (Paramiko's fastest of OpenSSH's defaults)
5  the private key parsed once, not once per connection
6  Paramiko alone: a Transport on our own socket, no Fabric Connection or SSHClient (and
   Fabric/Invoke never imported); TCP_NODELAY from the first packet (levels 3-5 set it
   after Fabric's `open()`, so the handshake still waited on delayed ACKs)
7  quick ACKs: TCP_QUICKACK set again after every read, so the host's channel-open
   confirmation (which OpenSSH holds back, Nagle, until its host-keys and key-options
   packets are ACKed) is not held ~40 ms by our delayed ACK (what greenroom does)

Not a level: one Fabric Config shared by every connection. It saves about 1 ms per host,
but connections sharing one Config fail at random when 100 threads open them at once
("No attribute or config key found for 'authentication'"), so every level keeps one Config
per connection, as greenroom does.
"""

from __future__ import annotations

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

LEVEL = int(sys.argv[1])
HOSTS = json.loads(sys.argv[2])  # [[address, key_filename(, port)], ...]
KNOWN_HOSTS = sys.argv[3]

import paramiko  # noqa: E402

# No algorithm weaker than OpenSSH 9.2's defaults is even offered.
DISABLED = {
    "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1",
            "diffie-hellman-group-exchange-sha1"],
    "ciphers": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
    "macs": ["hmac-md5", "hmac-md5-96", "hmac-sha1-96"],
    "keys": ["ssh-rsa"],
    "pubkeys": ["ssh-rsa"],
}

host_keys = paramiko.HostKeys()
host_keys.load(KNOWN_HOSTS)
pkey = paramiko.PKey.from_path(HOSTS[0][1]) if LEVEL >= 5 else None


class Refuse(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):  # type: ignore[no-untyped-def]
        raise SystemExit(f"unknown host key for {hostname}")


def fabric_way(entry: list) -> None:
    from fabric import Config, Connection

    address, key, port = (entry + [22])[:3]
    kwargs: dict[str, object] = {"look_for_keys": False, "allow_agent": False}
    kwargs.update(pkey=pkey) if pkey is not None else kwargs.update(key_filename=key)
    if LEVEL >= 4:
        kwargs["disabled_algorithms"] = DISABLED
    conn = Connection(address, user="root", port=port, connect_kwargs=kwargs, config=Config())
    client = conn.client
    client.set_missing_host_key_policy(Refuse())
    client._system_host_keys = host_keys  # noqa: SLF001 - parsed once, shared read-only
    with conn:
        conn.open()
        if LEVEL >= 3:
            conn.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if LEVEL >= 2:
            channel = conn.transport.open_session()
            channel.exec_command("true")
            if channel.recv_exit_status() != 0:
                raise SystemExit(f"{address}: true failed")
        else:
            conn.run("true", hide=True)


class QuickAckSocket(socket.socket):
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        try:
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass
        return data


def paramiko_way(entry: list) -> None:
    address, _key, port = (entry + [22])[:3]
    sock = socket.create_connection((address, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if LEVEL >= 7:
        sock = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        sock.settimeout(10)
    transport = paramiko.Transport(sock, disabled_algorithms=DISABLED)
    try:
        known = host_keys.lookup(address if port == 22 else f"[{address}]:{port}")
        if not known:
            raise SystemExit(f"unknown host key for {address}")
        options = transport.get_security_options()
        options.key_types = [t for t in known.keys() if t in options.key_types]
        transport.start_client(timeout=10)
        offered = transport.get_remote_server_key()
        if known.get(offered.get_name()) != offered:
            raise SystemExit(f"host key of {address} does not match known_hosts")
        transport.auth_publickey("root", pkey)
        channel = transport.open_session()
        channel.exec_command("true")
        if channel.recv_exit_status() != 0:
            raise SystemExit(f"{address}: true failed")
    finally:
        transport.close()


def untuned(entry: list) -> None:
    from fabric import Connection

    address, key, port = (entry + [22])[:3]
    with Connection(address, user="root", port=port, connect_kwargs={
            "key_filename": key, "look_for_keys": False, "allow_agent": False}) as conn:
        conn.run("true", hide=True)


if LEVEL == 0:
    one = untuned
elif LEVEL >= 6:
    one = paramiko_way
else:
    one = fabric_way

with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
    list(pool.map(one, HOSTS))
