"""The OCS HTTP service: charging sessions and events (Nchf-style), health, metrics, admin.

Charging runs on the event loop thread: one operation is a few tens of microseconds of CPU and
a journal write, with no await inside, so handing it to a thread pool would only add latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from pydantic import ValidationError

from cellcelly.api_docs import add_api_docs
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account, Status
from cellcelly.domain.errors import CatalogueError, DomainError
from cellcelly.domain.limits import MAX_SESSION_ID
from cellcelly.domain.money import format_tl, parse_tl
from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn
from cellcelly.domain.provisioning import InsufficientFunds
from cellcelly.errors import CellCellyError
from cellcelly.ocs.auth import ApiKey
from cellcelly.ocs.handler import API, ChargingHandler, FastPath, Reply
from cellcelly.ocs.metrics import OcsMetrics
from cellcelly.ocs.schemas import (
    NewSubscriber,
    PackagePurchase,
    StatusChange,
    TopUp,
)
from cellcelly.ports.balance_store import BalanceStore, off_loop
from cellcelly.ports.records import SubscriberExists, SubscriberRecord, SystemOfRecord
from cellcelly.web import (
    NO_TELEMETRY,
    HttpProblem,
    add_health_routes,
    check_bearer,
    json_response,
    problem_for,
    problem_response,
    read_body,
    validation_problem,
)

log = logging.getLogger(__name__)


def balance_json(account: Account, now: int) -> dict[str, Any]:
    return {
        "msisdn": account.msisdn,
        "status": account.status.value,
        "wallet": format_tl(account.wallet),
        "walletKurus": account.wallet,
        "availableKurus": account.available_money(),
        "buckets": [
            {
                "id": b.id,
                "package": b.package,
                "service": b.service.value,
                "total": b.total,
                "remaining": b.remaining,
                "available": account.available_units(b, now),
                "validFrom": b.valid_from,
                "validUntil": b.valid_until,
            }
            for b in account.buckets.values()
        ],
        "liveSessions": sum(1 for s in account.sessions.values() if s.finished_at is None),
    }


def asgi_app(app: FastAPI) -> FastPath:
    """What runs: the app `create_app` made, with the charging fast path in front of it."""
    return FastPath(app, app.state.handler)


def create_app(
    charging: ChargingService,
    accounts: AccountService,
    catalogue: CatalogueHolder,
    store: BalanceStore,
    records: SystemOfRecord,
    *,
    admin_token: str | None,
    api_key: str | None,
    collectors: Sequence[Collector] = (),
) -> FastAPI:
    """The OCS over its collaborators; who opened them closes them (the deployable, not the app).
    `collectors` join its /metrics (in the embedded stack: the SF's, which runs in the same process)."""
    metrics = OcsMetrics()
    for collector in collectors:
        metrics.registry.register(collector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("ocs ready", extra={"catalogue": catalogue.current.version})
        yield

    app = FastAPI(
        title="CellCelly OCS",
        version="0.1.0",
        summary="Online charging: sessions and events, modelled on 3GPP Nchf_ConvergedCharging",
        docs_url=None,  # add_api_docs: served from the package, not a CDN (works offline)
        redoc_url=None,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    add_api_docs(app, "/docs")
    app.state.metrics = metrics
    app.state.handler = handler = ChargingHandler(charging, metrics, ApiKey(api_key))

    @app.exception_handler(CellCellyError)
    async def _problem(request: Request, exc: CellCellyError) -> Response:
        """The HTTP boundary of the error tree (cellcelly.errors): an HttpProblem answers itself, an
        error that escaped a route gets its branch's answer (a back end down: 503)."""
        problem = problem_for(exc)
        metrics.rejected.labels(str(problem.status)).inc()
        return problem_response(problem)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        metrics.rejected.labels("400").inc()
        return problem_response(validation_problem(exc))

    def reply(result: Reply) -> Response:
        status, payload, media_type, headers = result
        return Response(payload, status_code=status, media_type=media_type, headers=headers)

    async def charge(op: str, ref: str, request: Request) -> Response:
        """The key first (as the fast path does: a stranger's body is never read), then the request."""
        refused = handler.refusal(request.headers.get("authorization"))
        if refused is not None:
            return reply(refused)
        key = request.headers.get("idempotency-key")
        raw = await read_body(request)
        return reply(await handler.handle(op, ref, raw, None if key is None else key.encode("latin-1")))

    # --- charging -------------------------------------------------------------------------------
    # The same handler serves these routes and the fast path in front of FastAPI (see `asgi_app`);
    # the routes are what the OpenAPI document shows and what runs when the fast path is off.

    # what /docs shows of the key and the Idempotency-Key (the handler checks them, not FastAPI)
    keyed: dict[str, Any] = {"security": [{"ocsApiKey": []}]}
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID},
        "description": "names a create that has no sessionId (a one-time event): a retry is charged once",
    }

    @app.post(
        f"{API}/chargingdata",
        status_code=201,
        tags=["charging"],
        openapi_extra={**keyed, "parameters": [idempotency]},
    )
    async def create(request: Request) -> Response:
        """Create a charging session (CCR-I), or charge a one-time event (CCR-E) with oneTimeEvent.
        Needs `Authorization: Bearer <OCS API key>`, and `sessionId` or an `Idempotency-Key` header."""
        return await charge("create", "", request)

    @app.post(API + "/chargingdata/{ref}/update", tags=["charging"], openapi_extra=keyed)
    async def update(ref: str, request: Request) -> Response:
        """Report usage and ask for more quota (CCR-U)."""
        return await charge("update", ref, request)

    @app.post(API + "/chargingdata/{ref}/release", tags=["charging"], openapi_extra=keyed)
    async def release(ref: str, request: Request) -> Response:
        """Report final usage and end the session (CCR-T). Answers 200 with the final figures
        (Nchf answers 204; the Diameter gateway needs the per-rating-group results)."""
        return await charge("release", ref, request)

    @app.post(f"{API}/noop", include_in_schema=False)
    async def noop(request: Request) -> Response:
        """The same parsing and answer encoding without charging: `make bench`'s baseline."""
        return await charge("noop", "", request)

    described = app.openapi

    def openapi() -> dict[str, Any]:
        schema = described()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["ocsApiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "CELLCELLY_OCS_API_KEY (`make run` keeps it in data/ocs-api-key)",
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    # --- operations -----------------------------------------------------------------------------

    async def probe() -> dict[str, Any]:
        await store.get_async("0")
        records.latest_catalogue()
        for collector in collectors:  # workers in this process (`make run`'s SF) may be unready too
            check = getattr(collector, "check_ready", None)
            if check is not None:
                check()
        return {"catalogue": catalogue.current.version}

    add_health_routes(app, probe)

    @app.get("/metrics", tags=["operations"])
    async def prometheus() -> Response:
        metrics.outbox.set(await store.outbox_size_async())
        metrics.catalogue.clear()
        metrics.catalogue.labels(catalogue.current.version).set(1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- admin ----------------------------------------------------------------------------------

    def admin(request: Request) -> None:
        check_bearer(request, admin_token)

    async def model(request: Request, cls: type[Any]) -> Any:
        try:
            return cls.model_validate_json(await read_body(request))
        except ValidationError as exc:
            raise validation_problem(exc) from None

    @app.get("/admin/catalogue", tags=["admin"])
    async def get_catalogue(request: Request) -> Response:
        admin(request)
        current = catalogue.current
        return json_response({"version": current.version, "source": current.source})

    @app.put("/admin/catalogue", tags=["admin"])
    async def put_catalogue(request: Request) -> Response:
        """Put a new catalogue (YAML or JSON text) in force; refused whole if anything is wrong."""
        admin(request)
        text = (await read_body(request, 1024 * 1024)).decode("utf-8", errors="replace")
        try:
            new = catalogue.replace(text)
        except CatalogueError as exc:
            raise HttpProblem(
                422, "Catalogue refused", "the catalogue in force is unchanged", problems=exc.problems
            ) from None
        return json_response({"version": new.version})

    @app.post("/admin/catalogue/reload", tags=["admin"])
    async def reload_catalogue(request: Request) -> Response:
        admin(request)
        try:
            new = catalogue.reload()
        except CatalogueError as exc:
            raise HttpProblem(
                422, "Catalogue refused", "the catalogue in force is unchanged", problems=exc.problems
            ) from None
        return json_response({"version": new.version})

    def msisdn_of(value: str) -> str:
        try:
            return Msisdn.parse(value).national
        except InvalidMsisdn as exc:
            raise HttpProblem(400, "Bad request", str(exc), "INVALID_MSISDN") from None

    async def account_or_404(msisdn: str) -> Account:
        account = await store.get_async(msisdn)
        if account is None:
            raise HttpProblem(404, "Not found", f"no subscriber {msisdn}", "USER_UNKNOWN")
        return account

    @app.post("/admin/subscribers", status_code=201, tags=["admin"])
    async def add_subscriber(request: Request) -> Response:
        admin(request)
        new: NewSubscriber = await model(request, NewSubscriber)
        record = SubscriberRecord(
            new.msisdn, new.firstName, new.lastName, new.email, "active", new.package, int(time.time())
        )
        try:
            account = await off_loop(store, accounts.open, record)
        except SubscriberExists:
            raise HttpProblem(409, "Conflict", f"subscriber {new.msisdn} exists") from None
        except DomainError as exc:
            raise HttpProblem(422, "Unprocessable", str(exc)) from None
        return json_response(balance_json(account, int(time.time())), 201)

    @app.get("/admin/subscribers/{msisdn}/balance", tags=["admin"])
    async def get_balance(msisdn: str, request: Request) -> Response:
        admin(request)
        return json_response(balance_json(await account_or_404(msisdn_of(msisdn)), int(time.time())))

    async def change(
        msisdn: str, request: Request, schema: type[Any], fn: Callable[[str, Any], Account]
    ) -> Response:
        """An admin change of one account: authorised, validated, applied, answered with the balance."""
        admin(request)
        number = msisdn_of(msisdn)
        body = await model(request, schema)
        await account_or_404(number)
        try:
            account = await off_loop(store, fn, number, body)
        except InsufficientFunds as exc:
            raise HttpProblem(402, "Insufficient funds", str(exc), "QUOTA_LIMIT_REACHED") from None
        except DomainError as exc:
            raise HttpProblem(422, "Unprocessable", str(exc)) from None
        return json_response(balance_json(account, int(time.time())))

    @app.post("/admin/subscribers/{msisdn}/topup", tags=["admin"])
    async def topup(msisdn: str, request: Request) -> Response:
        return await change(
            msisdn, request, TopUp, lambda n, b: accounts.top_up(n, parse_tl(b.amount), b.reference)
        )

    @app.post("/admin/subscribers/{msisdn}/packages", tags=["admin"])
    async def add_package(msisdn: str, request: Request) -> Response:
        return await change(
            msisdn, request, PackagePurchase, lambda n, b: accounts.buy_package(n, b.package, b.reference)
        )

    @app.put("/admin/subscribers/{msisdn}/status", tags=["admin"])
    async def put_status(msisdn: str, request: Request) -> Response:
        return await change(
            msisdn, request, StatusChange, lambda n, b: accounts.set_status(n, Status(b.status), b.reference)
        )

    return app
