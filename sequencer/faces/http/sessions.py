"""Browser sessions of the operator's screen: a token given once, then a cookie.

A person logs in on ``/ui/login`` with the same bearer token the API takes (auth.py,
same roles); the daemon answers with a random session id in an HttpOnly,
SameSite=Strict cookie (``COOKIE``) and keeps, in memory, who it names and the
session's CSRF token. The token itself is never stored in the browser. An open
daemon (loopback, no tokens) gives every browser a session at its first page, as
the open API's engineer ``local``.

What a session cookie is good for:

* the screen's pages and the API's **read** requests (GET/HEAD: the gate accepts the
  cookie there, so the page's ``EventSource('/events')`` needs no header);
* the screen's own forms (POST ``/ui/…``), each checked against the session's CSRF
  token (``check_csrf``) after the gate's Origin check;
* never the API's state-changing routes: those take a bearer token only.

Sessions end on logout, after ``IDLE_S`` without a request, or when the daemon
restarts (the page then asks for the token again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sequencer.faces.http.auth import Principal

COOKIE = "viaform_session"
CSRF_FIELD = "csrf"
IDLE_S = 12 * 3600.0  # a shift
MAX_SESSIONS = 500  # the oldest idle one goes first beyond this


@dataclass
class Session:
    id: str
    principal: Principal
    csrf: str
    seen: float
    flash: list[str] = field(default_factory=list)  # messages for the next page shown


class SessionStore:
    """Thread-safe map of session id → ``Session``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def new(self, principal: Principal) -> Session:
        session = Session(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32),
                          self._clock())
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session named by a cookie value, or None (unknown or expired)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen > IDLE_S:
                del self._sessions[session_id]
                return None
            session.seen = now
            self._sessions.move_to_end(session_id)
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


def check_csrf(session: Session, token: str | None) -> bool:
    """Whether a form's CSRF field is this session's token (constant time)."""
    return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())


def cookie_value(cookie_header: str | None) -> str | None:
    """The session id in a ``Cookie`` header, if any."""
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None
