"""The daemon's front door: cross-site refusal and authentication, before routing reads a body.

``Gate`` is a pure ASGI middleware around the FastAPI app. FastAPI reads and
parses a request's body before it runs the route's dependencies, so a token
checked in a dependency comes after a 422 for a malformed body. The gate runs
before any of that, in this order, and answers on its own (nothing reaches the
route, nothing changes):

1. **Cross-site check** (state-changing methods only: POST, PUT, PATCH, DELETE).
   The request's ``Origin`` — or, when there is none, its ``Referer`` — must be
   one of the daemon's own origins (``own_origins``), else **403**, logged. With
   neither header, an open daemon (loopback, no tokens) wants the CLI's
   ``X-Viaform-Client: viaform-cli`` header, else 403; a daemon with tokens lets
   the token decide (a browser never sends a bearer token on its own).
2. **Authentication and role** for routes that declare one (``route_role``):
   missing/unknown token **401**, role too low **403**, whatever the body. The
   principal is left in the scope (``PRINCIPAL_KEY``) for the route.

GETs skip step 1 but not step 2. A GET (or HEAD) without an ``Authorization``
header may instead carry the operator's screen's session cookie (sessions.py): the
session's principal then stands for the token it was opened with, so the page's
``EventSource('/events')`` works; a state-changing API request never takes the
cookie (the screen's own forms check their CSRF token). ``/openapi.json`` and
``/docs`` declare no role. ``document_security`` writes into the OpenAPI document the security the
gate really enforces in the daemon's mode.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, get_args, get_origin
from urllib.parse import urlsplit

import structlog
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from sequencer.faces.http.auth import (
    CLIENT_HEADER,
    CLIENT_VALUE,
    USER_HEADER,
    AuthConfig,
    Principal,
    Role,
    is_loopback,
)
from sequencer.faces.http.sessions import SessionStore, cookie_value

log = structlog.get_logger("viaform.daemon")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READING = frozenset({"GET", "HEAD"})  # the methods a session cookie may authenticate
PRINCIPAL_KEY = "viaform.principal"
ROLE_ATTR = "viaform_role"  # set on a route dependency: the least role the route needs
DEFAULT_PORT = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_USER_RE = re.compile(r"[^\w.@-]")

OriginKey = tuple[str, str, int]  # scheme, host (lower case, no brackets), port


class Refused(Exception):
    """An answer the gate gives itself: status, one-line detail, extra headers."""

    def __init__(self, code: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.headers = code, detail, headers or {}


# --- origins ----------------------------------------------------------------------------
def parse_origin(text: str) -> OriginKey | None:
    """An ``Origin`` or ``Referer`` value as (scheme, host, port); None if not http(s)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORT or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORT[parts.scheme]


def _host_port(host_header: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname.lower(), port) if parts.hostname else None


def own_origins(host_header: str | None, server: tuple[str, int] | None,
                open_mode: bool) -> set[OriginKey]:
    """The origins a page of this daemon itself would send.

    * ``http(s)://<Host header>``: the name the client used to reach the daemon (a
      tool-PC name, a reverse proxy). An open daemon counts it only when it names
      loopback: otherwise a DNS-rebinding page (evil.example resolving to 127.0.0.1)
      would be "same origin" with the daemon.
    * the bound address (the socket's own, from the ASGI scope) over http; a
      loopback bind also as ``localhost``, ``127.0.0.1`` and ``[::1]``. A wildcard
      bind (0.0.0.0, ::) names no host: the Host header covers it.
    """
    out: set[OriginKey] = set()
    parsed = _host_port(host_header) if host_header else None
    if parsed is not None and (not open_mode or is_loopback(parsed[0])):
        host, port = parsed
        for scheme, default in DEFAULT_PORT.items():
            out.add((scheme, host, port or default))
    if server is not None:
        host, port = str(server[0]).strip("[]").lower(), int(server[1])
        names: Iterable[str] = LOOPBACK_NAMES if is_loopback(host) else (host,)
        if not _is_wildcard(host):
            out.update(("http", name, port) for name in names)
    return out


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def cross_site(method: str, headers: Headers, server: tuple[str, int] | None,
               open_mode: bool) -> str | None:
    """Why this request is refused as cross-site, or None if it may go on."""
    if method not in STATE_CHANGING:
        return None
    origin, referer = headers.get("origin", "").strip(), headers.get("referer", "").strip()
    claimed, name = (origin, "Origin") if origin else (referer, "Referer")
    if claimed:
        if parse_origin(claimed) in own_origins(headers.get("host"), server, open_mode):
            return None
        return (f"cross-site request refused: {name} {claimed[:100]!r} is not this daemon's "
                f"origin; nothing was changed")
    if headers.get(CLIENT_HEADER) == CLIENT_VALUE or not open_mode:
        return None  # the CLI; or, with tokens, the token decides
    return (f"refused: a state-changing request to an open daemon needs the header "
            f"{CLIENT_HEADER}: {CLIENT_VALUE} (the viaform CLI sends it), or an Origin of "
            f"this daemon; nothing was changed")


# --- roles and principals ---------------------------------------------------------------
def route_role(endpoint: Callable[..., Any]) -> Role | None:
    """The least role a route needs: from its ``Annotated[Principal, Depends(dep)]``
    parameter, whose dependency carries ``ROLE_ATTR``. None = public."""
    found: Role | None = None
    for param in inspect.signature(endpoint).parameters.values():
        if get_origin(param.annotation) is not Annotated:
            continue
        for meta in get_args(param.annotation)[1:]:
            role = getattr(getattr(meta, "dependency", None), ROLE_ATTR, None)
            if isinstance(role, Role):
                found = role if found is None else max(found, role)
    return found


def authenticate(auth: AuthConfig, headers: Headers, role: Role, path: str,
                 client: str | None, session: Principal | None = None) -> Principal:
    """Who sent this request, if they may use a route that needs ``role``; else Refused.

    ``session``: who a screen session cookie names, for a request without an
    ``Authorization`` header (the caller passes it for reading methods only)."""
    if auth.open:
        user = _USER_RE.sub("", headers.get(USER_HEADER, ""))[:64]
        return Principal(user or "local", Role.ENGINEER)
    if "authorization" not in headers and session is not None:
        who: Principal | None = session
    else:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        who = auth.identify(token.strip() if scheme.lower() == "bearer" and token.strip()
                            else None)
    if who is None:
        log.warning("unauthenticated request", path=path, client=client)
        raise Refused(401, "missing or unknown bearer token", {"WWW-Authenticate": "Bearer"})
    if who.role < role:
        log.warning("forbidden request", path=path, who=who.name,
                    role=who.role.name.lower(), needs=role.name.lower())
        raise Refused(403, f"{who.name} is {who.role.name.lower()}; this needs "
                           f"{role.name.lower()}")
    return who


# --- the middleware ---------------------------------------------------------------------
class Gate:
    """Cross-site check, then authentication, before the app sees the request.

    ``routes`` are the API's own routes (matched here as the router would match
    them); a route's role comes from ``route_role`` of its endpoint. ``sessions``: the
    screen's browser sessions, whose cookie authenticates a reading request.
    """

    def __init__(self, app: ASGIApp, *, auth: AuthConfig, routes: list[BaseRoute],
                 sessions: SessionStore | None = None) -> None:
        self.app, self.auth, self.routes, self.sessions = app, auth, routes, sessions
        self._roles: dict[Any, Role | None] = {}

    def _role(self, scope: Scope) -> Role | None:
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                endpoint = child["endpoint"]
                if endpoint not in self._roles:
                    self._roles[endpoint] = route_role(endpoint)
                return self._roles[endpoint]
        return None  # no such route (404) or method (405): the app answers, nothing runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope["client"][0] if scope.get("client") else None
        try:
            reason = cross_site(scope["method"], headers, scope.get("server"), self.auth.open)
            if reason is not None:
                log.warning("state-changing request refused", method=scope["method"],
                            path=scope["path"], origin=headers.get("origin"),
                            referer=headers.get("referer"), client=client)
                raise Refused(403, reason)
            role = self._role(scope)
            if role is not None:
                session = None
                if self.sessions is not None and scope["method"] in READING:
                    found = self.sessions.get(cookie_value(headers.get("cookie")))
                    session = found.principal if found is not None else None
                scope[PRINCIPAL_KEY] = authenticate(self.auth, headers, role, scope["path"],
                                                    client, session)
        except Refused as exc:
            await _answer(send, exc)
            return
        await self.app(scope, receive, send)


async def _answer(send: Send, exc: Refused) -> None:
    """The app's error shape (``{"detail", "problems"}``), without reading the body."""
    body = json.dumps({"detail": exc.detail, "problems": []}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the OpenAPI document ---------------------------------------------------------------
BEARER = "bearer"
CLI_KEY = "viaformClient"


def document_security(doc: dict[str, Any], routes: list[BaseRoute], open_mode: bool) -> None:
    """Write the security in force into ``doc`` (in place; idempotent).

    Tokens: a bearer scheme, required on every operation with a role. Open: an apiKey
    scheme for the CLI header, required on state-changing operations only (GETs need
    nothing), and no 401 anywhere.
    """
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.clear()
    if open_mode:
        schemes[CLI_KEY] = {
            "type": "apiKey", "in": "header", "name": CLIENT_HEADER,
            "description": f"value {CLIENT_VALUE!r}. Open daemon (loopback, no tokens): a "
                           f"POST needs it unless its Origin is this daemon's; a foreign "
                           f"Origin or Referer is refused (403) in any case."}
    else:
        schemes[BEARER] = {
            "type": "http", "scheme": "bearer",
            "description": "a token from the daemon's tokens file; POST with a foreign "
                           "Origin or Referer is refused (403) even with a token."}
    for route in routes:
        role = route_role(getattr(route, "endpoint", None) or (lambda: None))
        if role is None:
            continue
        for method in getattr(route, "methods", None) or ():
            op = doc.get("paths", {}).get(getattr(route, "path", ""), {}).get(method.lower())
            if op is None:
                continue
            op.pop("security", None)
            if not open_mode:
                op["security"] = [{BEARER: []}]
                continue
            op.get("responses", {}).pop("401", None)
            if method in STATE_CHANGING:
                op["security"] = [{CLI_KEY: []}]
            else:
                op.get("responses", {}).pop("403", None)
