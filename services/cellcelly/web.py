"""What every CellCelly HTTP service shares: problem answers, bounded bodies, admin auth, health."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from cellcelly.errors import ApiError, CellCellyError, DomainError, ProtocolError
from cellcelly.http_protocol import TurnHttpProtocol

PROBLEM = "application/problem+json"
MAX_BODY = 64 * 1024
# every FastAPI app of the stack is built with this: its metrics are Prometheus's (/metrics), and
# FastAPI's own OpenTelemetry looked up the global providers on every request even when none was
# set: 6 µs of the 82 the MW's app spent on a balance query (an in-process ASGI loop; the figures
# of `cellcelly_dev.bench --only selfcare` are in docs/performance-log.md)
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class HttpProblem(ApiError):
    """An error with its HTTP status given where it is raised: answered as ProblemDetails."""

    def __init__(self, status: int, title: str, detail: str = "", cause: str = "", **extra: Any) -> None:
        self.status, self.title, self.cause = status, title, cause
        super().__init__(detail, **extra)


def problem_for(exc: CellCellyError) -> ApiError:
    """The HTTP boundary of the error tree (cellcelly.errors): an ApiError is its own answer, any
    other branch gets its standard status and cause, nothing internal told beyond the message of a
    rule broken."""
    if isinstance(exc, ApiError):
        return exc
    title = _TITLES.get(exc.http_status, "Error")
    detail = str(exc) if isinstance(exc, DomainError | ProtocolError) else ""
    return HttpProblem(exc.http_status, title, detail, exc.http_cause)


_TITLES = {400: "Bad request", 500: "Internal server error", 503: "Service unavailable"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def problem_payload(problem: ApiError) -> bytes:
    body: dict[str, Any] = {"status": problem.status, "title": problem.title}
    if problem.detail:
        body["detail"] = problem.detail
    if problem.cause:
        body["cause"] = problem.cause
    body.update(problem.extra)
    return orjson.dumps(body)


def problem_response(problem: ApiError) -> Response:
    return Response(
        problem_payload(problem),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=problem.headers() or None,
    )


def validation_problem(exc: ValidationError | RequestValidationError) -> HttpProblem:
    """400 with every invalid field, for a body we validated or for FastAPI's own validation."""
    params = [
        {"param": ".".join(str(p) for p in err["loc"]) or "body", "reason": err["msg"]}
        for err in exc.errors()
    ]
    return HttpProblem(
        400,
        "Bad request",
        "the request does not match the schema",
        "INVALID_MSG_FORMAT",
        invalidParams=params,
    )


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 past `limit` bytes (also when no length is declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HttpProblem(413, "Payload too large", f"at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, "Payload too large", f"at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_bearer(request: Request, expected: str | None) -> None:
    """Constant-time check of `Authorization: Bearer <token>`; admin is off when no token is set."""
    if not expected:
        raise HttpProblem(503, "Admin disabled", "set CELLCELLY_ADMIN_TOKEN to enable the admin API")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HttpProblem(401, "Unauthorized", "a valid admin bearer token is required")


def http_server(app: Any, host: str, port: int, **options: Any) -> uvicorn.Server:
    """How every CellCelly HTTP service runs under uvicorn: warnings only, no access log (a line per
    request would cost more than many requests do), httptools with one send a loop turn
    (`http_protocol.py`)."""
    settings: dict[str, Any] = {"log_level": "warning", "access_log": False, "http": TurnHttpProtocol}
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **(settings | options)))


def _health(status: str) -> dict[str, Any]:
    """An answer of /healthz or /readyz in the OpenAPI document (what `probe` adds is open)."""
    schema = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": status}, "detail": {"type": "string"}},
    }
    return {"description": status, "content": {"application/json": {"schema": schema}}}


def add_health_routes(app: FastAPI, probe: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """/healthz (the process answers) and /readyz (its back ends answer: `probe` returns what to
    add to the answer, or raises, and then the service is not ready)."""

    @app.get("/healthz", tags=["operations"], responses={200: _health("ok")})
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", tags=["operations"], responses={200: _health("ready"), 503: _health("unavailable")})
    async def readyz() -> Response:
        try:
            extra = await probe()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return json_response({"status": "unavailable", "detail": str(exc)}, 503)
        return json_response({"status": "ready", **extra})


def metrics_app(title: str, collectors: list[Any], probe: Callable[[], Awaitable[dict[str, Any]]]) -> FastAPI:
    """/metrics (the `collectors` in a registry of their own), /healthz and /readyz: the app of a
    service that serves nothing else over HTTP (a stand-alone SF or DGW)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, telemetry=NO_TELEMETRY)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    add_health_routes(app, probe)
    return app
