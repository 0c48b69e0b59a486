"""Fuzz the daemon's API from its own OpenAPI document (schemathesis): no request gets a 5xx,
and every answer matches the document (status codes, content types, bodies).

The app runs in-process (``from_asgi``, its lifespan included) against the fake
line, as an engineer so that every route's handler is reached; and once more open
(no tokens), as the CLI (its ``X-Viaform-Client`` header), against the open
document, which declares that header and no 401. ``/events`` is
left out: an event stream does not end, and it has its own test in
test_daemon_api.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sequencer.faces.http.app import create_app
from sequencer.faces.http.auth import CLIENT_HEADER, CLIENT_VALUE, AuthConfig, parse_env
from sequencer.store.audit import AuditLog
from tests.daemon_fake.fake_line import FakeLine

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "recipes"
TOKEN = "fuzz-engineer-token-0123456789"
MAX_EXAMPLES = 30  # per operation: the whole fuzz stays well under 30 s on 2 cores

app = create_app(FakeLine(), parse_env(f"fuzzer:engineer:{TOKEN}"), AuditLog(":memory:"),
                 recipes_dir=RECIPES)
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/events")
schema.config.update(headers={"Authorization": f"Bearer {TOKEN}"})
schema.config.generation.update(max_examples=MAX_EXAMPLES)

open_app = create_app(FakeLine(), AuthConfig(), AuditLog(":memory:"), recipes_dir=RECIPES)
open_schema = schemathesis.openapi.from_asgi("/openapi.json", open_app).exclude(
    path="/events")
open_schema.config.update(headers={CLIENT_HEADER: CLIENT_VALUE})
open_schema.config.generation.update(max_examples=MAX_EXAMPLES // 3)


@pytest.mark.timeout(60)
@schema.parametrize()
def test_api_never_answers_5xx_and_matches_its_document(case: schemathesis.Case) -> None:
    # positive_data_acceptance is left out on purpose: data valid by the schema may still be
    # refused by the line (an unknown lot: 404, a lot not PROCESSING: 409, a flow that does
    # not exist in the recipes folder: 422). Those answers are documented responses.
    case.call_and_validate(excluded_checks=[positive_data_acceptance],
                           additional_checks=[not_a_server_error])


@pytest.mark.timeout(60)
@open_schema.parametrize()
def test_open_api_never_answers_5xx_and_matches_its_document(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance],
                           additional_checks=[not_a_server_error])
