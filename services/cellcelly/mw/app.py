"""MW: the self-care API (FastAPI) and the web UI's static files, on one origin.

Every answer that is not 2xx is RFC 7807 ProblemDetails with a stable `cause`, including the ones
FastAPI and Starlette make themselves (an unparsable or too deeply nested body, a crash); bodies are
capped (413) before they are parsed, whether declared or streamed in chunks; every /api answer is
`Cache-Control: no-store` (balances and tokens must not be kept by browsers or proxies); a
subscriber's token reads only their own data, since no route takes an MSISDN from the client
except the admin ones; admin tokens hold only while their credential's version is unchanged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cellcelly.application.selfcare import SelfCare, Session, TokenRejected
from cellcelly.domain.account import Account, Status
from cellcelly.domain.balance_summary import summarise
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.money import format_tl, parse_tl
from cellcelly.errors import BackendError, CellCellyError
from cellcelly.mw import schemas as s
from cellcelly.mw.schemas import REASONS
from cellcelly.security import AccessClaims, TokenInvalid
from cellcelly.web import (
    PROBLEM,
    HttpProblem,
    add_health_routes,
    json_response,
    problem_for,
    problem_payload,
    problem_response,
)

log = logging.getLogger(__name__)

API = "/api/v1"
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
UNITS = {"voice": "seconds", "sms": "messages", "data": "octets"}
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
        too_large = HttpProblem(413, "Payload too large", f"at most {self.limit} bytes", "PAYLOAD_TOO_LARGE")
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_problem(send, too_large)
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
                    await _send_problem(send, too_large)
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
                await _send_problem(send, too_large)
        except Exception:
            # answered here rather than by Starlette's ServerErrorMiddleware (outside this one), so
            # a crash is ProblemDetails with the security headers too; nothing internal is told
            log.exception("unhandled error on %s %s", scope.get("method"), scope["path"])
            if started:
                raise
            await _send_problem(send, HttpProblem(500, "Internal server error", "", "SYSTEM_FAILURE"))


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


def current(request: Request) -> AccessClaims:
    """The subscriber the access token names (401 TOKEN_INVALID otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise TokenRejected("an access token is required (Authorization: Bearer ...)")
    try:
        return request.app.state.selfcare.tokens.verify(token.strip())  # type: ignore[no-any-return]
    except TokenInvalid:
        raise TokenRejected("the access token is invalid or expired") from None


async def administrator(request: Request) -> AccessClaims:
    """An access token with role admin whose credential has not changed since (its version), or the
    deployment's admin token (machine access)."""
    expected = request.app.state.admin_token
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if (
        expected
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        return AccessClaims("admin-token", "admin", 0)
    who = current(request)
    await request.app.state.selfcare.authorise_admin(who)
    return who


Me = Annotated[AccessClaims, Depends(current)]
Admin = Annotated[AccessClaims, Depends(administrator)]


def balance_json(account: Account, now: int) -> dict[str, Any]:
    summary = summarise(account, now)
    return {
        "msisdn": summary.msisdn,
        "status": summary.status,
        "wallet": {"kurus": summary.wallet, "tl": format_tl(summary.wallet)},
        "allowances": [
            {
                "service": a.service.value,
                "unit": UNITS[a.service.value],
                "remaining": a.remaining,
                "total": a.total,
                "used": a.used,
                "validUntil": a.valid_until,
            }
            for a in summary.allowances
        ],
        "packages": list(summary.packages),
        "asOf": now,
    }


def session_json(session: Session) -> dict[str, Any]:
    return {
        "accessToken": session.access_token,
        "tokenType": "bearer",
        "expiresIn": session.expires_in,
        "refreshToken": session.refresh_token,
        "refreshExpiresIn": session.refresh_expires_in,
        "role": session.role,
    }


def create_app(
    selfcare: SelfCare,
    *,
    admin_token: str | None = None,
    prompt_wav: Callable[[Any], Awaitable[bytes]] | None = None,
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
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
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

    # --- auth -------------------------------------------------------------------------------------

    @app.post(f"{API}/auth/register", status_code=201, tags=["auth"])
    async def register(body: s.Register) -> Response:
        """Sign up with a package: the record, the balance store and the cache learn of it at once."""
        await selfcare.register(
            body.firstName,
            body.lastName,
            body.msisdn,
            body.email,
            body.password,
            body.securityKey,
            body.package,
        )
        return json_response({"msisdn": body.msisdn}, 201)

    @app.post(f"{API}/auth/login", tags=["auth"])
    async def login(body: s.Login) -> Response:
        """Access token (15 min) and refresh token (12 h, or 30 days with rememberMe)."""
        return json_response(session_json(await selfcare.login(body.msisdn, body.password, body.rememberMe)))

    @app.post(f"{API}/auth/refresh", tags=["auth"])
    async def refresh(body: s.RefreshBody) -> Response:
        """A new pair; the refresh token given is used up."""
        return json_response(session_json(await selfcare.refresh(body.refreshToken)))

    @app.post(f"{API}/auth/logout", status_code=204, tags=["auth"])
    async def logout(body: s.RefreshBody) -> Response:
        await selfcare.logout(body.refreshToken)
        return Response(status_code=204)

    @app.post(f"{API}/auth/forgot", status_code=202, tags=["auth"])
    async def forgot(body: s.Forgot) -> Response:
        """Always 202: whether the number has an account is never told."""
        selfcare.forgot(body.msisdn, body.channel)
        return json_response(
            {"detail": "if the number is registered, a code is on its way; it is valid for 10 minutes"}, 202
        )

    @app.post(f"{API}/auth/reset", status_code=204, tags=["auth"])
    async def reset(body: s.Reset) -> Response:
        await selfcare.reset(body.msisdn, body.code, body.securityKey, body.newPassword)
        return Response(status_code=204)

    # --- me ---------------------------------------------------------------------------------------

    @app.get(f"{API}/me", tags=["me"])
    async def me(who: Me) -> Response:
        subscriber, credential = await selfcare.profile(who.msisdn)
        return json_response(
            {
                "msisdn": subscriber.msisdn,
                "firstName": subscriber.first_name,
                "lastName": subscriber.last_name,
                "email": subscriber.email,
                "status": subscriber.status,
                "package": subscriber.package,
                "createdAt": subscriber.created_at,
                "role": credential.role if credential else "subscriber",
            }
        )

    @app.get(f"{API}/me/balance", tags=["me"])
    async def balance(who: Me) -> Response:
        """Remaining minutes, SMS, data and wallet now (after live reservations), with validity."""
        return json_response(balance_json(await selfcare.account(who.msisdn), now()))

    if prompt_wav is not None:
        speak = prompt_wav

        @app.get(f"{API}/me/balance/prompt.wav", tags=["me"], response_class=Response)
        async def balance_prompt(who: Me) -> Response:
            """The balance as the IVR speaks it (Turkish), as a WAV file."""
            summary = summarise(await selfcare.account(who.msisdn), now())
            try:
                wav = await speak(summary)
            except Exception as exc:  # noqa: BLE001 - the speech engine is a separate program
                log.warning("prompt synthesis failed", extra={"error": str(exc)})
                raise HttpProblem(503, "Speech unavailable", "the prompt could not be synthesised") from None
            return Response(wav, media_type="audio/wav")

    @app.get(f"{API}/me/usage", tags=["me"])
    async def usage(who: Me, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
        """Usage records from the system of record, newest first (a few seconds behind charging)."""
        events = await selfcare.usage(who.msisdn, limit)
        return json_response(
            {
                "items": [
                    {
                        "eventId": e.event_id,
                        "service": e.service.value,
                        "units": e.units,
                        "unit": UNITS[e.service.value],
                        "chargedKurus": e.money,
                        "charged": format_tl(e.money),
                        "tariff": e.rule_id,
                        "occurredAt": e.occurred_at,
                        "fromPackage": e.bucket_units > 0,
                    }
                    for e in events
                ]
            }
        )

    @app.post(f"{API}/me/packages", status_code=201, tags=["me"])
    async def buy(body: s.BuyPackage, who: Me) -> Response:
        """Buy an add-on package, paid from the wallet: both or neither. A repeated requestId is a no-op."""
        account = await selfcare.buy_package(who.msisdn, body.package, body.requestId)
        return json_response(balance_json(account, now()), 201)

    @app.post(f"{API}/me/topup", tags=["me"])
    async def topup(body: s.TopUpVoucher, who: Me) -> Response:
        account = await selfcare.redeem_voucher(who.msisdn, body.voucher)
        return json_response(balance_json(account, now()))

    @app.post(f"{API}/me/password", status_code=204, tags=["me"])
    async def change_password(body: s.ChangePassword, who: Me) -> Response:
        await selfcare.change_password(who.msisdn, body.currentPassword, body.newPassword)
        return Response(status_code=204)

    # --- catalogue --------------------------------------------------------------------------------

    @app.get(f"{API}/packages", tags=["catalogue"])
    async def packages() -> Response:
        return json_response({"items": [_package_json(p) for p in catalogue.current.packages.values()]})

    # --- admin ------------------------------------------------------------------------------------

    @app.get(f"{API}/admin/subscribers", tags=["admin"])
    async def list_subscribers(
        _: Admin,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        rows = await selfcare.subscribers(limit, offset)
        return json_response(
            {
                "items": [
                    {
                        "msisdn": r.msisdn,
                        "firstName": r.first_name,
                        "lastName": r.last_name,
                        "email": r.email,
                        "status": r.status,
                        "package": r.package,
                        "createdAt": r.created_at,
                    }
                    for r in rows
                ]
            }
        )

    @app.put(API + "/admin/subscribers/{msisdn}/status", tags=["admin"])
    async def put_status(msisdn: s.Msisdn, body: s.StatusBody, _: Admin) -> Response:
        """Suspend (live sessions are aborted) or resume a subscriber."""
        account = await selfcare.set_status(msisdn, Status(body.status))
        return json_response(balance_json(account, now()))

    @app.put(API + "/admin/subscribers/{msisdn}/role", tags=["admin"])
    async def put_role(msisdn: s.Msisdn, body: s.RoleBody, _: Admin) -> Response:
        if not await selfcare.set_role(msisdn, body.role):
            raise HttpProblem(404, "Not found", f"no credential for {msisdn}", "NOT_FOUND")
        return json_response({"msisdn": msisdn, "role": body.role})

    @app.post(f"{API}/admin/vouchers", status_code=201, tags=["admin"])
    async def new_vouchers(body: s.NewVouchers, _: Admin) -> Response:
        """Voucher codes are shown once, here; only their hashes are kept."""
        amount = parse_tl(body.amount)
        if amount <= 0:
            raise HttpProblem(400, "Bad request", "the amount must be positive", "INVALID_INPUT")
        codes = await selfcare.create_vouchers(amount, body.count, body.batch)
        return json_response({"items": [{"code": c, "amount": format_tl(amount)} for c in codes]}, 201)

    @app.get(f"{API}/admin/catalogue", tags=["admin"])
    async def get_catalogue(_: Admin) -> Response:
        """The catalogue in force: tariffs and packages (YAML source and version)."""
        current = catalogue.current
        return json_response(
            {
                "version": current.version,
                "source": current.source,
                "packages": [_package_json(p) for p in current.packages.values()],
                "tariffs": [
                    {"id": t.id, "service": t.service.value, "price": format_tl(t.price), "per": t.per}
                    for t in current.tariffs
                ],
            }
        )

    @app.put(f"{API}/admin/catalogue", tags=["admin"])
    async def put_catalogue(request: Request, _: Admin) -> Response:
        """A new catalogue (YAML text): refused whole, with every problem, if anything is wrong."""
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            new = catalogue.replace(text)
        except CatalogueError as exc:
            raise HttpProblem(
                422,
                "Catalogue refused",
                "the catalogue in force is unchanged",
                "INVALID_CATALOGUE",
                problems=exc.problems,
            ) from None
        return json_response({"version": new.version})

    # --- operations -------------------------------------------------------------------------------

    async def probe() -> dict[str, Any]:
        await selfcare.ready()
        return {}

    add_health_routes(app, probe)

    if webui is not None and webui.is_dir():
        app.mount("/", StaticFiles(directory=webui, html=True), name="webui")

    app.add_middleware(Guard)
    return app


def _package_json(p: Any) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "price": {"kurus": p.price, "tl": format_tl(p.price)},
        "allowances": {service.value: units for service, units in p.allowances.items()},
        "validityDays": p.validity_days,
    }
