"""The screen's rules without a browser: sessions, CSRF, where a session cookie counts, the
state tables' coverage, the form helpers. (The browser tests drive the same rules through
real pages; these pin the edges a browser test would not reach.)"""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers
from starlette.testclient import TestClient

from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import (
    CLIENT_HEADER,
    CLIENT_VALUE,
    AuthConfig,
    Principal,
    Role,
    parse_env,
)
from sequencer.faces.http.gate import Refused, authenticate
from sequencer.faces.http.sessions import (
    COOKIE,
    IDLE_S,
    MAX_SESSIONS,
    SessionStore,
    check_csrf,
    cookie_value,
)
from sequencer.faces.screen import present
from sequencer.faces.screen.access import safe_next
from sequencer.faces.screen.settings import typed
from sequencer.states.job import STATES as JOB_STATES
from sequencer.states.substrate import STATES as WAFER_STATES
from sequencer.store.audit import AuditLog
from tests.daemon_fake.fake_line import FakeLine

TOKENS = {"operator": "op-token-0123456789abcdef", "technician": "tech-token-0123456789abc"}
AUTH = parse_env(",".join(f"{r[:4]}:{r}:{t}" for r, t in TOKENS.items()))
ORIGIN = "http://testserver"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_session_lives_while_used_and_ends_after_a_shift_idle_or_when_dropped() -> None:
    clock = Clock()
    store = SessionStore(clock)
    s = store.new(Principal("ann", Role.OPERATOR))
    clock.t = IDLE_S - 1
    assert store.get(s.id) is s  # used: its idle time starts again
    clock.t += IDLE_S - 1
    assert store.get(s.id) is s
    clock.t += IDLE_S + 1
    assert store.get(s.id) is None
    t = store.new(Principal("bob", Role.TECHNICIAN))
    store.drop(t.id)
    assert store.get(t.id) is None and store.get(None) is None and store.get("") is None


def test_the_oldest_session_goes_first_beyond_the_limit() -> None:
    store = SessionStore()
    first = store.new(Principal("a", Role.OPERATOR))
    for _ in range(MAX_SESSIONS):
        store.new(Principal("b", Role.OPERATOR))
    assert store.get(first.id) is None and len(store) == MAX_SESSIONS


def test_csrf_and_cookie_parsing() -> None:
    s = SessionStore().new(Principal("a", Role.OPERATOR))
    assert check_csrf(s, s.csrf) and not check_csrf(s, None) and not check_csrf(s, "x")
    assert cookie_value(f"a=1; {COOKIE}=abc; b=2") == "abc"
    assert cookie_value("a=1") is None and cookie_value(None) is None


def test_a_session_stands_for_its_token_only_without_an_authorization_header() -> None:
    op = Principal("ann", Role.OPERATOR)
    assert authenticate(AUTH, Headers({}), Role.OPERATOR, "/lots", None, op) == op
    with pytest.raises(Refused) as low:
        authenticate(AUTH, Headers({}), Role.TECHNICIAN, "/x", None, op)
    assert low.value.code == 403
    with pytest.raises(Refused) as wrong:  # a wrong bearer token is not saved by a cookie
        authenticate(AUTH, Headers({"authorization": "Bearer nope"}), Role.OPERATOR, "/x",
                     None, op)
    assert wrong.value.code == 401


def _logged_in(client: TestClient, role: str) -> None:
    client.get("/ui/login")
    r = client.post("/ui/login", data={"csrf": client.cookies.get("viaform_login") or "",
                                       "token": TOKENS[role], "next": "/"},
                    headers={"Origin": ORIGIN}, follow_redirects=False)
    assert r.status_code == 303 and client.cookies.get(COOKIE)


def test_the_cookie_reads_the_api_but_never_changes_it() -> None:
    app = create_app(FakeLine(), AUTH, AuditLog(":memory:"))
    client = TestClient(app)  # no lifespan: the gate and the routes, not the line
    _logged_in(client, "technician")
    assert client.get("/lots").status_code == 200  # a reading route: the session counts
    r = client.post("/tools/exposure/take", headers={"Origin": ORIGIN, CLIENT_HEADER:
                                                     CLIENT_VALUE})
    assert r.status_code == 401, "a state-changing API route wants the bearer token"
    r = client.post("/ui/tools/exposure/take", data={"csrf": "guessed"},
                    headers={"Origin": ORIGIN})
    assert r.status_code == 403 and "CSRF" in r.text


def test_a_login_form_not_given_to_this_browser_is_refused() -> None:
    client = TestClient(create_app(FakeLine(), AUTH, AuditLog(":memory:")))
    r = client.post("/ui/login", data={"csrf": "made-up", "token": TOKENS["operator"]},
                    headers={"Origin": ORIGIN})
    assert r.status_code == 403 and client.cookies.get(COOKIE) is None


def test_every_state_has_a_look_in_words_and_a_letter() -> None:
    for table, states in ((present.WAFER_LOOK, WAFER_STATES), (present.JOB_LOOK, JOB_STATES)):
        assert set(table) == set(states)
        assert all(look.words and look.code and look.css for look in table.values())


def test_back_goes_only_to_a_local_path_and_typed_values() -> None:
    assert safe_next("/ui/tools/oven") == "/ui/tools/oven"
    for bad in (None, "", "//evil.example/x", "http://evil.example/", "/\\\\evil", "x"):
        assert safe_next(bad) == "/"
    assert typed("12") == 12 and typed("1.5") == 1.5 and typed(" on ") is True
    assert typed("RET-A") == "RET-A" and typed("nan") == "nan"


class _Gem:
    """A stand-in for the GEM face's status (its E30 control state), nothing else."""

    def __init__(self) -> None:
        self.state = "ONLINE_REMOTE"

    async def start(self, line: object) -> None: ...

    def observe(self, event: object) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, object]:
        return {"control_state": self.state}


def test_the_header_shows_the_e30_control_state_of_a_gem_face() -> None:
    gem = _Gem()
    client = TestClient(create_app(FakeLine(), AuthConfig(), AuditLog(":memory:"), faces=[gem]))
    assert "E30: ONLINE REMOTE" in client.get("/").text
    gem.state = "EQUIPMENT_OFFLINE"
    fragment = client.get("/", headers={"X-Viaform-Fragment": "1"}).text
    assert '<span id="e30">' in fragment and "E30: EQUIPMENT OFFLINE" in fragment
    plain = TestClient(create_app(FakeLine(), AuthConfig(), AuditLog(":memory:")))
    assert "E30:" not in plain.get("/").text


class _SwitchedGem(_Gem):
    """The GEM face's status and its audited switch (the real one: tests/browser)."""

    def __init__(self) -> None:
        super().__init__()
        self.switched: list[tuple[str, str, str]] = []

    async def switch(self, action: str, who: str, role: str) -> str:
        if action == "online" and self.state.startswith("ONLINE"):
            raise ValueError("already online")
        self.switched.append((action, who, role))
        self.state = {"local": "ONLINE_LOCAL", "remote": "ONLINE_REMOTE",
                      "offline": "EQUIPMENT_OFFLINE", "online": "ONLINE_REMOTE"}[action]
        return self.state


def _csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    return page.split(marker, 1)[1].split('"', 1)[0]


def test_a_technician_switches_the_e30_control_state_from_the_header() -> None:
    gem = _SwitchedGem()
    client = TestClient(create_app(FakeLine(), AUTH, AuditLog(":memory:"), faces=[gem]))
    _logged_in(client, "operator")
    page = client.get("/").text
    assert "E30: ONLINE REMOTE" in page and 'action="/ui/gem/local"' not in page
    r = client.post("/ui/gem/local", data={"csrf": _csrf_of(page)},
                    headers={"Origin": ORIGIN})
    assert r.status_code == 403 and gem.switched == []  # an operator may not switch
    _logged_in(client, "technician")
    page = client.get("/").text
    assert 'action="/ui/gem/local"' in page
    r = client.post("/ui/gem/local", data={"csrf": "guessed"}, headers={"Origin": ORIGIN})
    assert r.status_code == 403 and gem.switched == []  # no CSRF token, no switch
    r = client.post("/ui/gem/local", data={"csrf": _csrf_of(page)},
                    headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and gem.switched == []  # another origin, no switch
    r = client.post("/ui/gem/local", data={"csrf": _csrf_of(page), "next": "/"},
                    headers={"Origin": ORIGIN}, follow_redirects=True)
    assert gem.switched == [("local", "tech", "technician")]
    assert "E30: ONLINE LOCAL" in r.text
    r = client.post("/ui/gem/online", data={"csrf": _csrf_of(r.text), "next": "/"},
                    headers={"Origin": ORIGIN}, follow_redirects=True)
    assert "already online" in r.text and len(gem.switched) == 1  # refused, said why


def test_a_cards_time_left_is_the_steps_own_estimate_counted_down_in_wall_time() -> None:
    import asyncio

    from sequencer.faces.http.contract import LineEvent
    from sequencer.faces.screen.live import StepClock

    class Line:
        def time_scale(self) -> float:
            return 100.0  # tool seconds per wall second

    steps = StepClock()
    asyncio.run(steps.start(Line()))  # type: ignore[arg-type]
    steps.observe(LineEvent(kind="step_start", t=10.0, tool="oven", wafer_id="W1"))
    assert steps.time_left("oven", 10.0) is None  # no estimate yet: the card says —
    steps.observe(LineEvent(kind="reading", t=11.0, tool="oven",
                            data={"elapsed_s": 100.0, "expected_s": 3100.0}))
    assert steps.time_left("oven", 11.0) == 30.0  # 3000 tool s at 100×
    assert steps.time_left("oven", 26.0) == 15.0 and steps.time_left("oven", 99.0) == 0.0
    steps.observe(LineEvent(kind="step_end", t=40.0, tool="oven", wafer_id="W1"))
    assert steps.time_left("oven", 40.0) is None


def test_the_etcher_cards_endpoint_follows_the_etch_steps_readings() -> None:
    from sequencer.faces.http.contract import LineEvent
    from sequencer.faces.screen.live import StepClock

    def reading(state: str, endpoint_s: float | None, co: float = 900.0,
                o: float = 450.0) -> LineEvent:
        return LineEvent(kind="reading", t=5.0, tool="etcher", wafer_id="W1", data={
            "elapsed_s": 1.0, "expected_s": 100.0, "state": state, "endpoint_s": endpoint_s,
            "oes_co": co, "oes_o": o})

    steps = StepClock()
    assert present.endpoint_text(steps.last_reading.get("etcher")) == "—"  # no etch yet
    steps.observe(LineEvent(kind="step_start", t=1.0, tool="etcher", wafer_id="W1"))
    steps.observe(reading("STABILIZING", None))
    assert present.endpoint_text(steps.last_reading["etcher"]) == "W1: waiting for RF"
    steps.observe(reading("ETCHING", None))
    assert present.endpoint_text(steps.last_reading["etcher"]) == \
        "W1: watching, none yet · OES CO/O 2.00"
    steps.observe(reading("OVERETCH", 75.0, co=100.0, o=400.0))
    assert present.endpoint_text(steps.last_reading["etcher"]) == \
        "W1: detected at 1 min 15 s of RF · OES CO/O 0.25"
    steps.observe(reading("COMPLETE", None))
    steps.observe(LineEvent(kind="step_end", t=9.0, tool="etcher", wafer_id="W1"))
    assert present.endpoint_text(steps.last_reading["etcher"]) == \
        "W1: none found (the main etch ran its set time)"  # kept once the step ended
    steps.observe(LineEvent(kind="step_start", t=10.0, tool="etcher", wafer_id="W2"))
    assert "etcher" not in steps.last_reading  # the next etch starts afresh
    steps.observe(reading("ALARM", None))
    assert present.endpoint_text(steps.last_reading["etcher"]) == \
        "W1: none (the etch stopped in ALARM)"


def test_pages_woken_by_one_burst_share_one_rendering_of_their_live_parts() -> None:
    """A fragment made after the event a page last heard (X-Viaform-Seen) is served to it
    even when later events came; a page that heard a later one gets a fresh rendering."""
    import time

    line = FakeLine()
    line._tools["etcher"].step = "etch"  # the tool's view: a step on it
    frag = {"X-Viaform-Fragment": "1"}

    def running(text: str) -> bool:  # the card's step clock: from the step_start event
        card = text.split('id="tool-etcher"', 1)[1].split("</article>", 1)[0]
        return ", running " in card

    with TestClient(create_app(line, AuthConfig(), AuditLog(":memory:"))) as client:
        assert not running(client.get("/", headers=frag).text)  # made: no step_start yet
        line._emit("step_start", tool="etcher", wafer_id="W1", step="etch", lot_id="L1")
        deadline = time.monotonic() + 5.0  # another path's fragment: fresh at each event
        while not running(client.get("/?probe", headers=frag).text):
            assert time.monotonic() < deadline, "the step_start never reached the screen"
            time.sleep(0.02)
        # heard only an early event: the copy made before step_start will do
        assert not running(client.get("/", headers={**frag, "X-Viaform-Seen": "1"}).text)
        # heard a later one (and without the header: everything published): made afresh
        assert running(client.get("/", headers={**frag, "X-Viaform-Seen": "999999"}).text)
        assert running(client.get("/", headers=frag).text)
