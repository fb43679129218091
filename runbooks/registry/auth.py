"""Registry credentials (Docker config or environment) and WWW-Authenticate challenges.

Credentials are looked up, in order:
1. `GREENROOM_REGISTRY_AUTH_<HOST>`: `user:password`, where <HOST> is the registry host
   (with port) upper-cased and every character other than A-Z and 0-9 replaced by `_`
   (ghcr.io -> GREENROOM_REGISTRY_AUTH_GHCR_IO, 127.0.0.1:5000 -> ..._127_0_0_1_5000).
2. `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), `auths.<host>.auth`
   (base64 `user:password`), as `docker login` writes it. Docker Hub is looked up under
   `https://index.docker.io/v1/`, `docker.io` and `registry-1.docker.io`.
Credential helpers (`credsStore`, `credHelpers`) are not supported; use the variable.
Secrets are kept in `Credentials`, whose repr never shows the password.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "GREENROOM_REGISTRY_AUTH_"
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class AuthError(RuntimeError):
    """Authentication failed or credentials are unusable (never contains the secret)."""


@dataclass(frozen=True)
class Credentials:
    """A user name and a password or token; the secret never appears in repr or str."""

    user: str
    secret: str = field(repr=False)
    origin: str = ""

    def __str__(self) -> str:
        return f"{self.user}:*** (from {self.origin})"


def env_name(host: str) -> str:
    """The environment variable that holds credentials for a registry host."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", host.upper())


def _decode(value: str, origin: str) -> Credentials:
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise AuthError(f"{origin}: the auth field is not base64 of user:password") from None
    user, sep, secret = text.partition(":")
    if not sep:
        raise AuthError(f"{origin}: the auth field must encode user:password")
    return Credentials(user, secret, origin)


def docker_config_path(env: dict[str, str] | None = None) -> Path:
    """Where the Docker client config lives ($DOCKER_CONFIG or ~/.docker)."""
    source = os.environ if env is None else env
    base = source.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def find_credentials(host: str, env: dict[str, str] | None = None) -> Credentials | None:
    """Credentials for `host` from the environment or the Docker config, or None."""
    env = dict(os.environ) if env is None else env
    name = env_name(host)
    if env.get(name):
        user, sep, secret = env[name].partition(":")
        if not sep or not user:
            raise AuthError(f"${name} must be user:password (the value is not shown)")
        return Credentials(user, secret, f"${name}")
    path = docker_config_path(env)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthError(f"{path}: cannot read the Docker config ({exc.__class__.__name__}); "
                        f"fix it or set ${name}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = [host, f"https://{host}", f"http://{host}"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys += list(_HUB_KEYS)
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            return _decode(str(entry["auth"]), f"{path} auths.{key}")
    return None


@dataclass(frozen=True)
class Challenge:
    """A parsed WWW-Authenticate challenge: scheme (bearer/basic) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme.lower(), params)


def scope_for(repo: str, actions: str) -> str:
    """A token scope: `repository:<repo>:<actions>` (actions like `pull` or `pull,push`)."""
    return f"repository:{repo}:{actions}"


def token_from_response(doc: object) -> tuple[str, int]:
    """The token and its lifetime from a token endpoint's JSON answer."""
    if not isinstance(doc, dict):
        raise AuthError("the token endpoint did not answer with a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("the token endpoint's answer has no token")
    try:
        expires = int(doc.get("expires_in") or 60)
    except (TypeError, ValueError):
        expires = 60
    return token, max(expires, 10)
