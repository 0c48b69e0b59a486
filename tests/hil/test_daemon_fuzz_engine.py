"""Fuzz the daemon's API over the REAL engine (schemathesis, from its own OpenAPI document):
no request gets a 5xx, and every answer matches the document.

Same checks as test_daemon_fuzz.py (which runs against the in-memory fake line), but
``create_app`` serves an ``EngineLine`` driving the bundled simulators (one ``SimThread``
for the module, time scale 3000), with tokens configured (the fuzz is an engineer, so
every handler is reached after the token check). Random lot bodies start real lots,
random manual commands go to the simulated tools: never run this against real tools.

Each operation is one pytest item, and schemathesis ends the app's lifespan after each
item; so every item is one daemon life (``EngineLine`` start → requests → graceful
stop) on the same journal and the same simulators: the lots submitted while fuzzing
``POST /lots`` are resumed from the journal, and run, while the later operations are
fuzzed. Path parameters and lot bodies are steered towards the real tools, a runnable
flow and a small pool of lot/wafer ids, so that the fuzz reaches the engine rather than
stopping at 404/422. ``/events`` is left out: a stream does not end (test_daemon_api.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from drivers.etcher import PlasmaEtcher
from drivers.exposure import ExposureTool
from sequencer.faces.http.app import create_app
from sequencer.faces.http.commands import COMMANDS, EVERY_TOOL
from sequencer.faces.http.engine_line import EngineLine
from sequencer.line.config import TOOLS
from sequencer.line.simhost import tools_config_for
from sequencer.process.lots import ID_RE, MAX_SLOTS
from sequencer.store.audit import AuditLog
from simulators.runner import SimThread
from tests.daemon_fake.fake_line import FakeLine

from .test_daemon_engine import AUTH, TOKENS, quick_flow

SCALE = 3000.0
MAX_EXAMPLES = 25  # per operation: the whole file takes ~15 s on 2 cores
ANSWERS: defaultdict[str, Counter[int]] = defaultdict(Counter)  # operation → status → n
LOT_IDS = [f"FZ{i}" for i in range(1, 5)]
WAFER_IDS = [f"{lot}-W{k:02d}" for lot in LOT_IDS for k in range(1, 26)]  # a lot's own
FLOWS = ["FLOW-Q", "FLOW-A"]


@dataclass
class Site:
    sims: SimThread
    db: Path
    recipes: Path


class EngineSwitch:
    """The ASGI app schemathesis calls: each lifespan builds a fresh daemon (``create_app``
    over a new ``EngineLine``) on the module's simulators and journal, and hands it the
    lifespan (start, then graceful stop). Outside the test (loading the document at
    collection) it serves the same ``create_app`` over the fake line, without a lifespan."""

    def __init__(self) -> None:
        self.site: Site | None = None
        self.idle = create_app(FakeLine(), AUTH, AuditLog(":memory:"))
        self.app: Any = self.idle

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
        elif self.site is None:
            await _bare_lifespan(receive, send)
        else:
            site = self.site
            cfg = tools_config_for(site.sims.endpoints, SCALE, journal=str(site.db))
            audit = AuditLog(site.db)
            self.app = create_app(EngineLine(cfg, site.db, recipes_dir=site.recipes,
                                             status_poll_wall_s=0.05),
                                  AUTH, audit, recipes_dir=site.recipes)
            try:
                await self.app(scope, receive, send)
            finally:
                self.app = self.idle
                audit.close()


async def _bare_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


switch = EngineSwitch()
schema = schemathesis.openapi.from_asgi("/openapi.json", switch).exclude(path="/events")
schema.config.update(headers={"Authorization": f"Bearer {TOKENS['engineer']}"})
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@schema.hook
def flatmap_path_parameters(_: Any, params: Any) -> st.SearchStrategy[Any]:
    """Mostly real tools and the pool's lots/wafers/alarms; sometimes what was generated."""
    if not isinstance(params, dict):
        return st.just(params)
    pools = {"tool": list(TOOLS), "lot_id": LOT_IDS, "wafer_id": WAFER_IDS,
             "alarm_id": list(range(1, 6))}
    choices = {k: st.sampled_from([*pools[k], v]) for k, v in params.items() if k in pools}
    return st.fixed_dictionaries(choices).map(lambda picked: {**params, **picked})


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def _steer_wafer(wafer: Any, k: int, lot_id: str) -> Any:
    """The k-th wafer of a steered lot: slot k and id ``<lot>-Wkk`` where they were valid."""
    if not isinstance(wafer, dict):
        return wafer
    out = {**wafer}
    if _valid_id(wafer.get("id")):
        out["id"] = f"{lot_id}-W{k:02d}"
    slot = wafer.get("slot")  # JSON Schema's integer: 8.0 is one too
    if isinstance(slot, int | float) and not isinstance(slot, bool) and slot == int(slot) \
            and 1 <= slot <= MAX_SLOTS:
        out["slot"] = k
    return out


@schema.hook
def flatmap_body(ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    """Lot bodies get a runnable flow and ids from the pools (so lots really start and later
    operations find them); manual commands become one every tool takes, with arguments it
    takes. Or the body is kept as generated. Only values that are valid already are
    replaced, so a negative case stays invalid (what it was made invalid for is kept)."""
    path = ctx.operation.path if ctx.operation is not None else ""
    if not isinstance(body, dict):
        return st.just(body)
    if path == "/lots" and isinstance(body.get("lot"), dict):
        steered = st.tuples(st.sampled_from(FLOWS), st.sampled_from(LOT_IDS)).map(
            lambda picked: {**body, "lot": _steer_lot(body["lot"], *picked)})
    elif path.endswith("/commands") and body.get("command") in COMMANDS \
            and isinstance(body.get("args", {}), dict):
        steered = st.sampled_from(_EVERY_TOOL).flatmap(lambda command: _ARGS.get(
            command, st.just({})).map(lambda args: {**body, "command": command, "args": args}))
    else:
        return st.just(body)
    return st.one_of(steered, st.just(body))


def _steer_lot(lot: dict[str, Any], flow: str, lot_id: str) -> dict[str, Any]:
    out = {**lot}
    if _valid_id(lot.get("flow")):
        out["flow"] = flow
    if _valid_id(lot.get("lot_id")):
        out["lot_id"] = lot_id
    if isinstance(lot.get("wafers"), list):
        out["wafers"] = [_steer_wafer(w, k, lot_id) for k, w in enumerate(lot["wafers"], 1)]
    return out


_EVERY_TOOL = sorted(c for c, spec in COMMANDS.items() if spec.tools == EVERY_TOOL)
_SETTINGS = [*ExposureTool.settings, *PlasmaEtcher.settings]
_ARGS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "get": st.fixed_dictionaries({"name": st.sampled_from(_SETTINGS)}),
    "set": st.fixed_dictionaries({"name": st.sampled_from(_SETTINGS), "value": st.one_of(
        st.integers(-10, 10_000), st.floats(-1e4, 1e4), st.booleans(), st.text(max_size=4))}),
    "raw": st.fixed_dictionaries({"line": st.sampled_from(
        ["*IDN?", "SYST:STAT?;:ALAR?", "SYST:ERR?", "*RST", "EXP:DOSE 300", "NOPE?"])}),
    "load": st.fixed_dictionaries({"wafer_id": st.sampled_from(WAFER_IDS[:3])}),
    "lock_door": st.fixed_dictionaries({"locked": st.booleans()}),
}


@schema.hook
def after_call(ctx: Any, case: schemathesis.Case, response: Any) -> None:
    ANSWERS[f"{case.method} {case.path}"][response.status_code] += 1


@pytest.fixture(scope="module", autouse=True)
def _line_site(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if request.config.getoption("--tools"):
        pytest.skip("sends random commands to the tools: only against the bundled simulators")
    tmp = tmp_path_factory.mktemp("fuzz-engine")
    with SimThread(time_scale=SCALE, seed=1) as sims:
        switch.site = Site(sims, tmp / "journal.db", quick_flow(tmp))
        try:
            yield switch.site
        finally:
            switch.site = None


@pytest.mark.timeout(45)
@schema.parametrize()
def test_engine_api_never_answers_5xx_and_matches_its_document(case: schemathesis.Case) -> None:
    # positive_data_acceptance is left out, as in test_daemon_fuzz.py: valid data may still
    # be refused by the line (404 unknown lot, 409 wrong state or tool busy, 422 bad flow).
    case.call_and_validate(excluded_checks=[positive_data_acceptance],
                           additional_checks=[not_a_server_error], timeout=10.0)


def test_the_fuzz_reached_the_engine() -> None:
    """The steering works: lots were accepted and found again, manual commands and takes
    reached the tools or the engine's busy/taken checks (else the fuzz above would only
    have exercised 404s and 422s)."""
    if not ANSWERS:
        pytest.skip("counts the answers of the fuzz above: run the whole file")

    def answered(op: str, *codes: int) -> int:
        return sum(ANSWERS[op][c] for c in codes)

    reached = {op: dict(codes) for op, codes in ANSWERS.items() if "{tool}/" in op
               or "lots" in op}
    assert answered("POST /lots", 201) >= 1, reached
    assert answered("GET /lots/{lot_id}", 200) >= 1, reached
    assert answered("POST /tools/{tool}/commands", 200, 409) >= 1, reached
    assert answered("POST /tools/{tool}/take", 200, 409) >= 1, reached
