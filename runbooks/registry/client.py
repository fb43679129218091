"""A registry HTTP API v2 client on `requests`: bearer/basic auth, retries, blobs, manifests.

One `RegistryClient` per registry; its Session pools as many connections as there are jobs.
Credentials only travel in Authorization headers and never appear in messages.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .auth import (
    AuthError,
    Credentials,
    env_name,
    find_credentials,
    parse_challenge,
    scope_for,
    token_from_response,
)
from .manifests import ACCEPT, media_type_of, sha256_digest

CHUNK = 1 << 20
RETRY_STATUS = {429, 500, 502, 503, 504}
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RegistryError(RuntimeError):
    """A registry request failed; `retriable` tells the copier whether trying again may help."""

    def __init__(self, message: str, status: int | None = None, retriable: bool = False):
        super().__init__(message)
        self.status = status
        self.retriable = retriable


class BlobCorrupt(RegistryError):
    """The bytes served for a blob do not hash to its digest (or have the wrong size)."""


def retry_after(resp: requests.Response | None, attempt: int, backoff: float) -> float:
    """Seconds to wait before the next attempt: Retry-After when given, else exponential."""
    header = resp.headers.get("Retry-After") if resp is not None else None
    if header:
        try:
            return min(max(float(header), 0.0), 60.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(header) if header else None
            if when is not None:
                return min(max(when.timestamp() - time.time(), 0.0), 60.0)
    return backoff * (2 ** attempt) * (0.5 + random.random() / 2)


def _error_detail(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        return "; ".join(f"{e.get('code')} ({e.get('message')})" for e in errors[:3])
    except (ValueError, AttributeError):
        return resp.reason or ""


class RegistryClient:
    """Talks to one registry: `host[:port]`, over HTTPS unless `insecure` (plain HTTP)."""

    def __init__(self, host: str, *, insecure: bool = False, jobs: int = 8,
                 credentials: Credentials | None = None, lookup_credentials: bool = True,
                 attempts: int = 5, backoff: float = 0.25, timeout: float = 60.0):
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.credentials = credentials or (find_credentials(host) if lookup_credentials else None)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(jobs, 1) * 2 + 2,
                              max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "greenroom-registry/1"
        # requests reads the environment (proxies, NO_PROXY, CA bundle, ~/.netrc) again on
        # every request when trust_env is on: thousands of stat() calls and walks over
        # os.environ per run. Read it once, here, for this registry.
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle and not insecure:                    # plain HTTP has no certificates
            self.session.verify = bundle
        self._lock = threading.Lock()
        self._scheme: str | None = None
        self._challenge: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.requests = 0

    # -- auth -------------------------------------------------------------------------
    def _fetch_token(self, scopes: tuple[str, ...]) -> str:
        key = " ".join(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            realm = self._challenge.get("realm")
            if not realm:
                raise AuthError(f"{self.host}: bearer challenge without a realm")
            params: list[tuple[str, str]] = []
            if self._challenge.get("service"):
                params.append(("service", self._challenge["service"]))
            params += [("scope", s) for s in scopes]
            auth = None
            if self.credentials:
                auth = (self.credentials.user, self.credentials.secret)
                params.append(("account", self.credentials.user))
            try:
                resp = self.session.get(realm, params=params, auth=auth, timeout=self.timeout)
            except TRANSIENT as exc:
                raise RegistryError(f"{self.host}: token endpoint unreachable: "
                                    f"{exc.__class__.__name__}", retriable=True) from None
            self.requests += 1
            if resp.status_code in (401, 403):
                who = f"credentials {self.credentials}" if self.credentials else "anonymous access"
                raise AuthError(f"{self.host}: the token endpoint refused {who} for {key}; "
                                f"check `docker login` or ${env_name(self.host)}")
            if resp.status_code != 200:
                raise RegistryError(f"{self.host}: token endpoint answered {resp.status_code}",
                                    resp.status_code, resp.status_code in RETRY_STATUS)
            try:
                token, lifetime = token_from_response(resp.json())
            except ValueError:
                raise AuthError(f"{self.host}: the token endpoint did not answer JSON") from None
            self._tokens[key] = (token, time.monotonic() + lifetime - 5)
            return token

    def _auth_header(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if self._scheme == "bearer":
            return {"Authorization": f"Bearer {self._fetch_token(scopes)}"}
        if self._scheme == "basic" and self.credentials:
            import base64

            raw = f"{self.credentials.user}:{self.credentials.secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _learn_challenge(self, resp: requests.Response, url: str) -> None:
        ch = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if ch is None or ch.scheme not in ("bearer", "basic"):
            raise AuthError(f"{self.host}: 401 without a usable WWW-Authenticate for {url}")
        if ch.scheme == "basic" and not self.credentials:
            raise AuthError(f"{self.host} requires a login: run `docker login {self.host}` or "
                            f"set ${env_name(self.host)}=user:password")
        with self._lock:
            self._scheme, self._challenge = ch.scheme, ch.params

    # -- requests ---------------------------------------------------------------------
    def request(self, method: str, path: str, *, scopes: tuple[str, ...] = (),
                ok: tuple[int, ...] = (200,), retry: bool = True, **kwargs) -> requests.Response:
        """Send a request with auth, retrying transient failures; raise unless status in `ok`."""
        url = path if path.startswith("http") else urljoin(self.base, path)
        extra = kwargs.pop("headers", {})
        kwargs.setdefault("timeout", (10, self.timeout))
        attempt, authed = 0, False
        while True:
            resp = None
            try:
                headers = {**extra, **self._auth_header(scopes)}
                resp = self.session.request(method, url, headers=headers,
                                            allow_redirects=True, **kwargs)
                self.requests += 1
            except TRANSIENT as exc:
                if not retry or attempt + 1 >= self.attempts:
                    raise RegistryError(f"{method} {url}: {exc.__class__.__name__} after "
                                        f"{attempt + 1} attempt(s)", retriable=True) from None
            except RegistryError as exc:
                if not (retry and exc.retriable and attempt + 1 < self.attempts):
                    raise
            else:
                if resp.status_code == 401 and not authed:
                    resp.close()
                    self._learn_challenge(resp, url)
                    authed = True
                    continue
                if resp.status_code == 401:
                    resp.close()
                    who = str(self.credentials) if self.credentials else "anonymous access"
                    raise AuthError(f"{method} {url}: 401 with {who}; check `docker login "
                                    f"{self.host}` or ${env_name(self.host)}")
                if resp.status_code in ok:
                    return resp
                detail = _error_detail(resp)
                resp.close()
                transient = resp.status_code in RETRY_STATUS
                if not (retry and transient and attempt + 1 < self.attempts):
                    raise RegistryError(f"{method} {url}: {resp.status_code} {detail}".rstrip(),
                                        resp.status_code, transient)
            time.sleep(retry_after(resp, attempt, self.backoff))
            attempt += 1

    # -- manifests --------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """Fetch a manifest: (bytes, media type, digest); a digest reference is verified."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT},
                            scopes=(scope_for(repo, "pull"),))
        body = resp.content
        digest = sha256_digest(body)
        if ref.startswith("sha256:") and digest != ref:
            raise BlobCorrupt(f"{self.host}/{repo}@{ref}: manifest content hashes to {digest}")
        return body, media_type_of(body, resp.headers.get("Content-Type")), digest

    def head_manifest(self, repo: str, ref: str) -> str | None:
        """The digest of `repo:ref` in this registry, or None when absent."""
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT},
                            scopes=(scope_for(repo, "pull"),), ok=(200, 404))
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            return self.get_manifest(repo, ref)[2]
        return digest

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        """Push a manifest under a tag or digest; returns the digest the registry reports."""
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", data=body,
                            headers={"Content-Type": media_type},
                            scopes=(scope_for(repo, "pull,push"),), ok=(200, 201))
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(body)

    def catalog(self, page: int = 1000, pages: int = 100) -> set[str] | None:
        """Every repository the registry lists, or None when it does not say (catalog off,
        refused, or longer than `pages` pages): then anything may be there."""
        repos: set[str] = set()
        path = f"/v2/_catalog?n={page}"
        try:
            for _ in range(pages):
                resp = self.request("GET", path, scopes=("registry:catalog:*",), retry=False)
                repos.update(resp.json().get("repositories") or [])
                link = resp.headers.get("Link", "")
                if 'rel="next"' not in link:
                    return repos
                path = link.split(";", 1)[0].strip().strip("<>")
        except (RegistryError, AuthError, ValueError):
            return None
        return None

    # -- blobs ------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        """Whether the blob is in `repo` (HEAD)."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404),
                            scopes=(scope_for(repo, "pull"),))
        return resp.status_code == 200

    def blob_chunks(self, repo: str, digest: str, size: int,
                    verify: bool = True) -> Iterator[bytes]:
        """Stream a blob, verifying its size and (with `verify`) its sha256; the last chunk is
        held until verified. The copy engine passes verify=False: its targets check the digest
        of what they receive themselves (a registry answers DIGEST_INVALID, a layout hashes)."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", stream=True,
                            scopes=(scope_for(repo, "pull"),))
        hasher, seen, held = hashlib.sha256(), 0, b""
        try:
            for chunk in resp.raw.stream(CHUNK, decode_content=False):
                if verify:
                    hasher.update(chunk)
                seen += len(chunk)
                if seen > size:
                    break
                if held:
                    yield held
                held = chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(f"blob {digest} from {self.host}/{repo}: connection failed after "
                                f"{seen} of {size} bytes ({exc.__class__.__name__})",
                                retriable=True) from None
        finally:
            resp.close()
        got = "sha256:" + hasher.hexdigest() if verify else digest
        if seen != size or got != digest:
            raise BlobCorrupt(f"blob {digest} from {self.host}/{repo} is corrupt: got {seen} "
                              f"bytes hashing to {got[:19]}..., expected {size} bytes; "
                              "the source serves bad data, nothing was pushed for it")
        if held:
            yield held

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> str | None:
        """Cross-repository mount; None when mounted, else the upload URL the registry opened."""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/",
                            params={"mount": digest, "from": from_repo}, ok=(201, 202),
                            scopes=(scope_for(repo, "pull,push"), scope_for(from_repo, "pull")))
        resp.close()
        if resp.status_code == 201:
            return None
        return urljoin(self.base, resp.headers["Location"])

    def start_upload(self, repo: str) -> str:
        """Open an upload session; returns its URL."""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,),
                            scopes=(scope_for(repo, "pull,push"),))
        resp.close()
        return urljoin(self.base, resp.headers["Location"])

    def finish_upload(self, repo: str, location: str, digest: str, size: int,
                      chunks: Iterator[bytes] | bytes) -> None:
        """Monolithic PUT of the whole blob to an upload URL (streamed from `chunks`)."""
        if isinstance(chunks, bytes) or size == 0:
            body: bytes | _Sized = chunks if isinstance(chunks, bytes) else b"".join(chunks)
        else:
            body = _Sized(chunks, size)
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={digest}", data=body, retry=False,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(size)},
                     scopes=(scope_for(repo, "pull,push"),), ok=(201,)).close()


class _Sized:
    """An iterable body with a known length, so requests sends Content-Length, not chunked."""

    def __init__(self, chunks: Iterator[bytes], size: int):
        self._chunks, self._size = chunks, size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)
