"""Who is looking at the screen, and what they may do: sessions, login, CSRF, roles.

* Open daemon (loopback, no tokens): every browser gets a session at its first page,
  as the open API's engineer ``local`` (no login).
* Tokens: a page without a live session redirects to ``/ui/login``; the token typed
  there is checked by ``AuthConfig.identify`` (the API's own check) and never kept
  in the browser: the cookie holds a random session id (HttpOnly, SameSite=Strict).
* Every form that changes something carries the session's CSRF token
  (``csrf`` field), checked here after the gate's Origin check; the login form
  carries a one-time value of its own cookie (``LOGIN_COOKIE``), so a foreign page
  cannot log a browser in under someone else's token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response

from sequencer.faces.http.auth import AuthConfig, Principal, Role
from sequencer.faces.http.sessions import (
    COOKIE,
    CSRF_FIELD,
    IDLE_S,
    Session,
    SessionStore,
    check_csrf,
)

LOGIN_COOKIE = "viaform_login"
OPEN_USER = "local"
MAX_FORM_BYTES = 16_384


@dataclass
class Viewer:
    """The session behind a request; ``fresh``: made just now, its cookie must be set."""

    session: Session
    fresh: bool = False

    @property
    def principal(self) -> Principal:
        return self.session.principal

    def may(self, role: Role, auth: AuthConfig) -> bool:
        return auth.open or self.principal.role >= role


class NeedLogin(Exception):
    """No live session on a daemon with tokens: the page sends the person to log in."""


class Forbidden(Exception):
    """A form the session may not send (CSRF, role): 403, nothing changed."""


def viewer(request: Request, store: SessionStore, auth: AuthConfig) -> Viewer:
    found = store.get(request.cookies.get(COOKIE))
    if found is not None:
        return Viewer(found)
    if auth.open:
        return Viewer(store.new(Principal(OPEN_USER, Role.ENGINEER)), fresh=True)
    raise NeedLogin


def set_session_cookie(response: Response, session: Session, request: Request) -> None:
    response.set_cookie(COOKIE, session.id, max_age=int(IDLE_S), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the screen's forms), first values."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("form too large; nothing was changed")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def check_form(v: Viewer, fields: dict[str, str], role: Role, auth: AuthConfig) -> None:
    """The CSRF token, then the role; Forbidden names what is wrong."""
    if not check_csrf(v.session, fields.get(CSRF_FIELD)):
        raise Forbidden("this form's CSRF token is missing or not this session's (a page "
                        "from another site, or an old page): nothing was changed")
    if not v.may(role, auth):
        raise Forbidden(f"{v.principal.name} is {v.principal.role.name.lower()}; this needs "
                        f"{role.name.lower()}: nothing was changed")


def login_nonce() -> str:
    return secrets.token_urlsafe(24)


def check_login(request: Request, fields: dict[str, str], auth: AuthConfig) -> Principal | None:
    """Who the login form's token names, if the form is the one this browser was given."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = fields.get(CSRF_FIELD, "")
    if not nonce or not hmac.compare_digest(nonce.encode(), sent.encode()):
        raise Forbidden("the login form was not this browser's (reload the login page)")
    return auth.identify(fields.get("token", "").strip() or None)


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to after a form (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
