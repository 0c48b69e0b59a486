"""Who may do what: bearer tokens mapped to roles operator < technician < engineer.

Tokens come from a YAML file (``--tokens FILE`` or ``$VIAFORM_TOKENS_FILE``)::

    tokens:
      - {name: alice, role: operator, token: "…at least 16 characters…"}
      - {name: bob, role: engineer, sha256: "<hex digest of the token>"}

or from ``$VIAFORM_TOKENS`` = ``name:role:token,name:role:token``. A token is
compared by its SHA-256 digest in constant time, so a file may hold digests only.

Bound to loopback with no tokens, the daemon is open (every caller is an
engineer named by the ``X-Viaform-User`` header, for the audit). Bound beyond
loopback with no tokens, it refuses to start (``AuthError``). Tokens, once
configured, are enforced on loopback too.

The viaform CLI sends ``CLIENT_HEADER: CLIENT_VALUE`` on every request. A browser
cannot send a custom header cross-site without a CORS preflight, which the
daemon never grants, so the header proves the request is not a cross-site form
or fetch: an open daemon accepts a state-changing request with no ``Origin``
and no ``Referer`` only with it (``gate.py``). The client imports these two
constants; keep them identical on both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import yaml

MIN_TOKEN_CHARS = 16
ENV_TOKENS = "VIAFORM_TOKENS"
ENV_TOKENS_FILE = "VIAFORM_TOKENS_FILE"
USER_HEADER = "X-Viaform-User"
CLIENT_HEADER = "X-Viaform-Client"
CLIENT_VALUE = "viaform-cli"


class AuthError(ValueError):
    """Tokens that cannot be used, or a bind that needs tokens; the message says what to do."""


class Role(IntEnum):
    OPERATOR = 1  # lots, every query
    TECHNICIAN = 2  # + alarm acknowledge, manual tool commands, take/give
    ENGINEER = 3  # + held wafers' release/scrap, forced take that pauses the running job

    @classmethod
    def parse(cls, text: object) -> Role:
        try:
            return cls[str(text).upper()]
        except KeyError:
            raise AuthError(f"role {text!r}: must be one of "
                            f"{', '.join(r.name.lower() for r in cls)}") from None


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class AuthConfig:
    """``principals`` maps a token's SHA-256 hex digest to who holds it; empty = open."""

    principals: dict[str, Principal] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.principals

    def identify(self, token: str | None) -> Principal | None:
        """The holder of ``token``, or None (wrong or missing token)."""
        if token is None:
            return None
        wanted = digest(token)
        found = None
        for known, principal in self.principals.items():
            if hmac.compare_digest(known, wanted):  # no early exit: constant time
                found = principal
        return found

    def check_bind(self, host: str) -> None:
        """Refuse an open daemon on anything but loopback."""
        if self.open and not is_loopback(host):
            raise AuthError(
                f"refusing to listen on {host} without tokens: anyone on the network could "
                f"drive the tools. Configure tokens (--tokens FILE, ${ENV_TOKENS_FILE} or "
                f"${ENV_TOKENS}=name:role:token,...) or bind 127.0.0.1.")


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable


def _principal(entry: object, where: str) -> tuple[str, Principal]:
    if not isinstance(entry, Mapping):
        raise AuthError(f"{where}: expected a mapping with name, role and token (or sha256)")
    unknown = set(entry) - {"name", "role", "token", "sha256"}
    if unknown:
        raise AuthError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AuthError(f"{where}.name: a non-empty string is required")
    role = Role.parse(entry.get("role"))
    token, sha = entry.get("token"), entry.get("sha256")
    if (token is None) == (sha is None):
        raise AuthError(f"{where}: give exactly one of token or sha256")
    if token is not None:
        if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
            raise AuthError(f"{where}.token: at least {MIN_TOKEN_CHARS} characters")
        return digest(token), Principal(name, role)
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef"
                                                         for c in sha.lower()):
        raise AuthError(f"{where}.sha256: 64 hex digits")
    return sha.lower(), Principal(name, role)


def _add(principals: dict[str, Principal], key: str, who: Principal, where: str) -> None:
    if key in principals:
        raise AuthError(f"{where}: the same token is already given to "
                        f"{principals[key].name}")
    principals[key] = who


def parse_tokens(raw: object, source: str) -> AuthConfig:
    """A tokens document (``{tokens: [...]}``) as loaded from YAML."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("tokens"), list):
        raise AuthError(f"{source}: expected 'tokens:' with a list of entries")
    principals: dict[str, Principal] = {}
    for i, entry in enumerate(raw["tokens"]):
        where = f"{source}: tokens[{i}]"
        key, who = _principal(entry, where)
        _add(principals, key, who, where)
    return AuthConfig(principals)


def parse_env(text: str) -> AuthConfig:
    """``name:role:token,name:role:token`` (a token may itself hold ':')."""
    principals: dict[str, Principal] = {}
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        parts = item.strip().split(":", 2)
        where = f"${ENV_TOKENS} entry {i + 1}"
        if len(parts) != 3:
            raise AuthError(f"{where}: expected name:role:token")
        key, who = _principal({"name": parts[0], "role": parts[1], "token": parts[2]}, where)
        _add(principals, key, who, where)
    return AuthConfig(principals)


def load_auth(path: Path | str | None = None,
              env: Mapping[str, str] | None = None) -> AuthConfig:
    """Tokens from ``path``, else ``$VIAFORM_TOKENS_FILE``, else ``$VIAFORM_TOKENS``, else open."""
    env = os.environ if env is None else env
    file = path or env.get(ENV_TOKENS_FILE)
    if file:
        p = Path(file)
        try:
            raw = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise AuthError(f"{p}: no such tokens file") from None
        except yaml.YAMLError as exc:
            raise AuthError(f"{p}: not valid YAML: {exc}") from None
        return parse_tokens(raw, str(p))
    if env.get(ENV_TOKENS):
        return parse_env(env[ENV_TOKENS])
    return AuthConfig()
