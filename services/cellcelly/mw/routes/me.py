"""A subscriber's own data: profile, balance (also spoken, as a WAV), usage, add-on packages,
voucher top-ups, password. No route here takes an MSISDN: the access token says whose."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cellcelly.application.selfcare import SelfCare
from cellcelly.domain.balance_summary import summarise
from cellcelly.domain.limits import MAX_REQUEST_NUMBER
from cellcelly.domain.money import format_tl
from cellcelly.mw import models as m
from cellcelly.mw import schemas as s
from cellcelly.mw.routes.common import API, UNITS, Me, balance_json, current
from cellcelly.web import HttpProblem, json_response

log = logging.getLogger(__name__)


def router(
    selfcare: SelfCare, now: Callable[[], int], prompt_wav: Callable[[Any], Awaitable[bytes]] | None
) -> APIRouter:
    r = APIRouter(prefix=f"{API}/me", tags=["me"])

    @r.get("", response_model=m.Profile, responses=m.problems(401, 404))
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

    @r.get("/balance", response_model=m.Balance, responses=m.problems(401, 404))
    async def balance(request: Request) -> Response:
        """Remaining minutes, SMS, data and wallet now (after live reservations), with validity."""
        # the request a subscriber makes most: its token is checked here rather than through
        # `Me`, whose resolution by FastAPI took 8 µs of the 66 it spent on one (same check)
        who = await current(request)
        answer = balance_json(await selfcare.account(who.msisdn), now())
        low = selfcare.accounts.catalogue.current.policy.low_wallet  # what the UI warns below
        return json_response({**answer, "lowWallet": {"kurus": low, "tl": format_tl(low)}})

    if prompt_wav is not None:
        speak = prompt_wav

        @r.get(
            "/balance/prompt.wav",
            response_class=Response,
            responses={
                200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                **m.problems(401, 404, 503),
            },
        )
        async def balance_prompt(who: Me) -> Response:
            """The balance as the IVR speaks it (Turkish), as a WAV file."""
            summary = summarise(await selfcare.account(who.msisdn), now())
            try:
                wav = await speak(summary)
            except Exception as exc:  # noqa: BLE001 - the speech engine is a separate program
                log.warning("prompt synthesis failed", extra={"error": str(exc)})
                raise HttpProblem(503, "Speech unavailable", "the prompt could not be synthesised") from None
            return Response(wav, media_type="audio/wav")

    @r.get("/usage", response_model=m.Usage, responses=m.problems(400, 401))
    async def usage(
        who: Me,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(max_length=400, description="the `next` of a page")] = None,
    ) -> Response:
        """Usage records from the system of record, newest first (a few seconds behind charging),
        a page at a time: `next` is the `before` of the following page."""
        events = await selfcare.usage(who.msisdn, limit, None if before is None else _cursor(before))
        last = events[-1] if len(events) == limit else None
        return json_response(
            {
                "next": None if last is None else f"{last.occurred_at}:{last.request_number}:{last.event_id}",
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
                        "destination": e.destination,
                        "packageUnits": e.bucket_units,
                        "walletUnits": e.wallet_units,
                    }
                    for e in events
                ],
            }
        )

    @r.post(
        "/packages",
        status_code=201,
        response_model=m.Balance,
        responses=m.problems(400, 401, 402, 403, 404, 422),
    )
    async def buy(body: s.BuyPackage, who: Me) -> Response:
        """Buy an add-on package, paid from the wallet: both or neither. A repeated requestId is a no-op."""
        account = await selfcare.buy_package(who.msisdn, body.package, body.requestId)
        return json_response(balance_json(account, now()), 201)

    @r.get("/renewals", response_model=m.Renewals, responses=m.problems(401))
    async def renewals(who: Me) -> Response:
        """The packages renewed from the wallet when their period ends."""
        return json_response({"items": await selfcare.renewals(who.msisdn)})

    @r.put("/renewals/{package}", response_model=m.RenewalSet, responses=m.problems(400, 401, 422))
    async def set_renewal(package: s.PackageCode, body: s.Renewal, who: Me) -> Response:
        """Renew `package` from the wallet when it ends (the price then in force; a notice after,
        or one saying the wallet could not pay), or stop."""
        await selfcare.set_renewal(who.msisdn, package, body.renew)
        return json_response({"package": package, "renew": body.renew})

    @r.post("/topup", response_model=m.Balance, responses=m.problems(400, 401, 404, 409, 429))
    async def topup(body: s.TopUpVoucher, who: Me) -> Response:
        account = await selfcare.redeem_voucher(who.msisdn, body.voucher)
        return json_response(balance_json(account, now()))

    @r.post("/password", status_code=204, response_class=Response, responses=m.problems(400, 401))
    async def change_password(body: s.ChangePassword, who: Me) -> Response:
        await selfcare.change_password(who.msisdn, body.currentPassword, body.newPassword)
        return Response(status_code=204)

    return r


def _cursor(text: str) -> tuple[int, int, str]:
    """A page's `next` read back: "occurredAt:requestNumber:eventId" (the id may hold colons)."""
    at, _, rest = text.partition(":")
    number, _, event_id = rest.partition(":")
    # bounded as the columns are: a number past them is no page's `next`, not a database error
    if not (
        at.isdigit() and number.isdigit() and event_id and len(at) <= 11 and int(number) <= MAX_REQUEST_NUMBER
    ):
        raise HttpProblem(400, "Bad request", "`before` is not a page's `next`", "INVALID_INPUT")
    return int(at), int(number), event_id
