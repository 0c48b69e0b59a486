"""The daemon's error answers: one shape, ``{"detail": "...", "problems": [{place, message}]}``.

``HttpError`` is raised by routes; the handlers map it, Starlette's own HTTP
errors (404, 405 with every method of the path in ``Allow``), the line's
``LineError`` (its ``status``) and request validation (422, every problem with
its place, e.g. ``lot.wafers[1].slot``) to that shape. The gate (gate.py)
answers 401/403 in the same shape before a route runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sequencer.faces.http.contract import LineError, ToolRejected


class Problem(BaseModel):
    place: str
    message: str


class ErrorBody(BaseModel):
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class HttpError(Exception):
    """An error answer with the ErrorBody shape."""

    def __init__(self, code: int, detail: str, headers: dict[str, str] | None = None,
                 problems: list[Problem] | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.headers = code, detail, headers
        self.problems = problems or []


def _place(loc: tuple[int | str, ...]) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def install_error_handlers(app: FastAPI) -> None:
    def body(detail: str, problems: list[Problem] | None = None) -> dict[str, Any]:
        return ErrorBody(detail=detail, problems=problems or []).model_dump()

    @app.exception_handler(HttpError)
    async def http_error(_: Request, exc: HttpError) -> JSONResponse:
        return JSONResponse(body(exc.detail, exc.problems), exc.code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow: every method of the path, not only the first route's
            methods: set[str] = set()
            for route in app.routes:
                if route.matches(request.scope)[0] is not Match.NONE:
                    methods |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(body(str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(LineError)
    async def line_error(_: Request, exc: LineError) -> JSONResponse:
        detail = str(exc)
        if isinstance(exc, ToolRejected) and exc.code is not None:
            detail = f"{detail} (tool error {exc.code})"
        return JSONResponse(body(detail), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [Problem(place=_place(tuple(e.get("loc", ()))), message=str(e.get("msg")))
                    for e in exc.errors()]
        return JSONResponse(body(f"invalid request: {len(problems)} problem(s)", problems), 422)
