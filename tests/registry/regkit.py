"""Test kit: real `docker-registry` processes on loopback, an HTTP proxy of our own that counts
requests and injects faults (503/429 with Retry-After, a cut connection, corrupt bytes) and can
front a registry with a Bearer token endpoint, and a builder that pushes synthetic images.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd bcrypt line (apache2-utils `htpasswd -B` when present, else python bcrypt)."""
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-niB", user], input=password + "\n", text=True,
                             capture_output=True, check=True).stdout
        return out.strip()
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}"


class Registry:
    """A `docker-registry serve` process on 127.0.0.1 with its own storage and config."""

    def __init__(self, root: Path, htpasswd: str | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = root / "access.log"
        auth = ""
        if htpasswd:
            pw = root / "htpasswd"
            pw.write_text(htpasswd + "\n")
            pw.chmod(0o600)
            auth = f"auth: {{htpasswd: {{realm: test, path: {pw}}}}}\n"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error, accesslog: {disabled: false}}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: '{self.host}', secret: {secrets.token_hex(8)}}}\n" + auth)
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{self.host}/v2/", timeout=1)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    def log_lines(self) -> list[str]:
        """The access log so far."""
        return self.log.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        """Kill the process (by its own pid) and close the log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@dataclass
class Fault:
    """One injected fault: on the `times` first requests whose method and path match."""

    method: str
    path_contains: str
    kind: str                      # "status" | "cut" | "corrupt"
    status: int = 503
    retry_after: str | None = "0"
    times: int = 1
    hits: int = 0


@dataclass
class ProxyState:
    """Shared state of a proxy: the request log, faults, optional token auth."""

    upstream: str
    upstream_auth: tuple[str, str] | None = None
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    token_users: dict[str, str] | None = None       # user -> password for the token endpoint
    tokens: dict[str, set[str]] = field(default_factory=dict)   # token -> granted scopes
    token_requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.method == method and f.path_contains in path and f.hits < f.times:
                    f.hits += 1
                    return f
        return None


def _needed_scope(method: str, path: str) -> str | None:
    parts = urlsplit(path).path.split("/")
    for marker in ("manifests", "blobs", "tags"):
        if marker in parts:
            repo = "/".join(parts[2:parts.index(marker)])
            return f"repository:{repo}:{'pull' if method in ('GET', 'HEAD') else 'push'}"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ProxyState

    def log_message(self, *args) -> None:  # quiet
        pass

    def _token_endpoint(self) -> None:
        st = self.state
        query = parse_qs(urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            if st.token_users is None or st.token_users.get(user) != pw:
                self._reply(401, b'{"details":"bad credentials"}')
                return
        st.token_requests.append({"user": user, "scope": query.get("scope", []),
                                  "service": query.get("service", [None])[0]})
        granted = set()
        for scope in query.get("scope", []):
            kind, repo, actions = scope.split(":")
            for action in actions.split(","):
                if action == "pull" or user is not None:
                    granted.add(f"{kind}:{repo}:{action}")
        token = secrets.token_hex(16)
        st.tokens[token] = granted
        self._reply(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                    "application/json")

    def _reply(self, status: int, body: bytes = b"", ctype: str = "text/plain",
               headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        st = self.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith("/token"):
            self._token_endpoint()
            return
        with st.lock:
            st.log.append((self.command, self.path))
        if st.token_users is not None and self.path.startswith("/v2/"):
            need = _needed_scope(self.command, self.path)
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            granted = st.tokens.get(token)
            if granted is None or (need and need not in granted):
                host = self.headers.get("Host")
                challenge = f'Bearer realm="http://{host}/token",service="test-registry"'
                if need:
                    challenge += f',scope="{need}"'
                self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', "application/json",
                            {"WWW-Authenticate": challenge})
                return
        fault = st.fault_for(self.command, self.path)
        if fault and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._reply(fault.status, b"injected", headers=extra)
            return
        conn = http.client.HTTPConnection(st.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "authorization", "connection")}
        if st.upstream_auth:
            raw = ":".join(st.upstream_auth).encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            if k.lower() == "location":
                v = v.replace(st.upstream, self.headers.get("Host", st.upstream))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault and fault.kind == "cut":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault and fault.kind == "corrupt" and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class Proxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of one registry (see ProxyState)."""

    def __init__(self, state: ProxyState):
        self.state = state
        handler = type("H", (_Handler,), {"state": state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Builder:
    """Pushes blobs and manifests into a registry over plain HTTP (with optional basic auth)."""

    def __init__(self, host: str, auth: tuple[str, str] | None = None):
        self.base = f"http://{host}"
        self.s = requests.Session()
        self.s.auth = auth

    def blob(self, repo: str, data: bytes) -> dict:
        d = digest_of(data)
        r = self.s.post(f"{self.base}/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else self.base + loc
        r = self.s.put(loc + ("&" if "?" in loc else "?") + f"digest={d}", data=data,
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        return {"digest": d, "size": len(data)}

    def manifest(self, repo: str, ref: str, doc: dict, media_type: str) -> dict:
        body = json.dumps(doc).encode()
        r = self.s.put(f"{self.base}/v2/{repo}/manifests/{ref}", data=body,
                       headers={"Content-Type": media_type})
        assert r.status_code == 201, r.text
        return {"mediaType": media_type, "digest": digest_of(body), "size": len(body)}

    def image(self, repo: str, arch: str, layers: list[bytes], oci: bool = False,
              variant: str | None = None, tag: str | None = None) -> dict:
        """Push one single-platform image; returns its descriptor with a platform."""
        cfg = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers",
               "diff_ids": [digest_of(x) for x in layers]}, "config": {}}
        if variant:
            cfg["variant"] = variant
        cdesc = self.blob(repo, json.dumps(cfg).encode())
        ldescs = [self.blob(repo, data) for data in layers]
        doc = {"schemaVersion": 2,
               "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
               "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, **cdesc},
               "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER, **d} for d in ldescs]}
        desc = self.manifest(repo, tag or digest_of(json.dumps(doc).encode()), doc,
                             doc["mediaType"])
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        return {**desc, "platform": platform}

    def index(self, repo: str, tag: str, children: list[dict], oci: bool = False) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST,
               "manifests": children}
        return self.manifest(repo, tag, doc, doc["mediaType"])


def random_bytes(n: int, seed: int) -> bytes:
    """Deterministic incompressible bytes."""
    out, counter = bytearray(), 0
    while len(out) < n:
        out += hashlib.shake_256(f"{seed}-{counter}".encode()).digest(min(65536, n - len(out)))
        counter += 1
    return bytes(out[:n])
