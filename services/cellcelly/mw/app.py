"""MW: the self-care API (FastAPI) and the web UI's static files, on one origin.

Every answer that is not 2xx is RFC 7807 ProblemDetails with a stable `cause`, including the ones
FastAPI and Starlette make themselves (an unparsable or too deeply nested body, a crash); bodies are
capped (413) before they are parsed, whether declared or streamed in chunks; every /api answer is
`Cache-Control: no-store` (balances and tokens must not be kept by browsers or proxies); a
subscriber's token reads only their own data, since no route takes an MSISDN from the client
except the admin ones; admin tokens hold only while their credential's version is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cellcelly.api_docs import add_api_docs
from cellcelly.application.selfcare import SelfCare
from cellcelly.errors import BackendError, CellCellyError
from cellcelly.mw.models import problem_media_type
from cellcelly.mw.routes import admin, auth, me
from cellcelly.mw.routes import catalogue as catalogue_routes
from cellcelly.mw.routes import mailbox as mailbox_routes
from cellcelly.mw.schemas import REASONS
from cellcelly.notifier.channels import Mailbox
from cellcelly.web import (
    NO_TELEMETRY,
    PROBLEM,
    HttpProblem,
    add_health_routes,
    problem_for,
    problem_payload,
    problem_response,
)

log = logging.getLogger(__name__)

WEBUI = Path(__file__).resolve().parent.parent / "webui"
MAX_BODY = 16 * 1024
HTTP_CAUSES = {
    400: "INVALID_INPUT",
    401: "TOKEN_INVALID",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        b"connect-src 'self'; manifest-src 'self'; worker-src 'self'; frame-ancestors 'none'; "
        b"base-uri 'self'; form-action 'self'",
    ),
]


class Guard:
    """ASGI middleware: refuse bodies over `limit` with 413 (declared or streamed), add security
    headers, and mark /api answers no-store."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_problem(send, self._too_large())
                return
        api = scope["path"].startswith("/api/")
        received = 0
        started = overflowed = False

        async def limited_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    overflowed = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflowed:  # FastAPI turns our exception into its own 400: answer 413 instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_problem(send, self._too_large())
                return
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not started:
                await _send_problem(send, self._too_large())
        except Exception:
            # answered here rather than by Starlette's ServerErrorMiddleware (outside this one), so
            # a crash is ProblemDetails with the security headers too; nothing internal is told
            log.exception("unhandled error on %s %s", scope.get("method"), scope["path"])
            if started:
                raise
            await _send_problem(send, HttpProblem(500, "Internal server error", "", "SYSTEM_FAILURE"))

    def _too_large(self) -> HttpProblem:
        return HttpProblem(413, "Payload too large", f"at most {self.limit} bytes", "PAYLOAD_TOO_LARGE")


class _TooLarge(Exception):
    pass


async def _send_problem(send: Send, problem: HttpProblem) -> None:
    body = problem_payload(problem)
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": problem.status, "headers": headers + SECURITY_HEADERS}
    )
    await send({"type": "http.response.body", "body": body})


def _invalid_params(exc: RequestValidationError) -> list[dict[str, str]]:
    params = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = ".".join(loc) or "body"
        ctx = err.get("ctx") or {}
        codes = ctx.get("codes") if err.get("type") == "invalid_field" else None
        if codes:
            params += [{"param": param, "reason": REASONS.get(c, c), "code": c} for c in codes]
            continue
        kind = err.get("type", "")
        code = {"missing": "required", "string_too_long": "too_long", "string_too_short": "required"}.get(
            kind, "invalid"
        )
        params.append({"param": param, "reason": str(err.get("msg", "invalid")), "code": code})
    return params


def create_app(
    selfcare: SelfCare,
    *,
    admin_token: str | None = None,
    prompt_wav: Callable[[Any], Awaitable[bytes]] | None = None,
    mailbox: Mailbox | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    webui: Path | None = WEBUI,
) -> FastAPI:
    """The MW app over the self-care use cases. `prompt_wav` (the IVR's) serves the spoken balance."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    app = FastAPI(
        title="CellCelly self-care (MW)",
        version="1.0.0",
        summary="Sign-up, login, balances, usage, add-on packages and top-ups for prepaid subscribers",
        docs_url=None,  # add_api_docs: served from the package, allowed by the CSP
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.selfcare = selfcare
    app.state.admin_token = admin_token
    catalogue = selfcare.accounts.catalogue

    @app.exception_handler(CellCellyError)
    async def _error(request: Request, exc: CellCellyError) -> Response:
        """The HTTP boundary of the error tree: an ApiError (self-care's, HttpProblem) answers
        itself with its headers, a rule broken 400, a back end down 503 (see cellcelly.errors)."""
        if isinstance(exc, BackendError):
            log.warning("back end failed on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(problem_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        params = _invalid_params(exc)
        return problem_response(
            HttpProblem(400, "Bad request", "the request is not valid", "INVALID_INPUT", invalidParams=params)
        )

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        return problem_response(
            HttpProblem(404, "Not found", f"no such resource {request.url.path}", "NOT_FOUND")
        )

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> Response:
        return problem_response(HttpProblem(405, "Method not allowed", "", "METHOD_NOT_ALLOWED"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """The errors FastAPI raises itself (e.g. 400 for a body json cannot parse, which includes
        nesting past Python's recursion limit), as ProblemDetails rather than {"detail": ...}."""
        try:
            title = HTTPStatus(exc.status_code).phrase.capitalize()
        except ValueError:
            title = "Error"
        cause = HTTP_CAUSES.get(
            exc.status_code, "INVALID_INPUT" if exc.status_code < 500 else "SYSTEM_FAILURE"
        )
        detail = exc.detail if isinstance(exc.detail, str) else ""
        response = problem_response(HttpProblem(exc.status_code, title, detail, cause))
        response.headers.update(exc.headers or {})
        return response

    def now() -> int:
        return int(selfcare.clock())

    # FastAPI tries the routers in order, each route's pattern in turn: a subscriber's own data,
    # the requests that come most, is tried first
    app.include_router(me.router(selfcare, now, prompt_wav))
    app.include_router(auth.router(selfcare))
    if mailbox is not None:
        app.include_router(mailbox_routes.router(mailbox))
    app.include_router(catalogue_routes.router(catalogue))
    app.include_router(admin.router(selfcare, catalogue, now))

    # --- operations -------------------------------------------------------------------------------

    async def probe() -> dict[str, Any]:
        await selfcare.ready()
        return {}

    add_health_routes(app, probe)
    add_api_docs(app, "/api/docs")

    if webui is not None and webui.is_dir():
        app.mount("/", StaticFiles(directory=webui, html=True), name="webui")

    app.add_middleware(Guard)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_media_type(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
