"""What the routers share: who is asking (subscriber or admin) and the JSON of a balance, a session
and a package, so every route that answers one answers the same shape."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request

from cellcelly.application.selfcare import Session, TokenRejected
from cellcelly.domain.account import Account
from cellcelly.domain.balance_summary import summarise
from cellcelly.domain.money import format_tl
from cellcelly.security import AccessClaims, TokenInvalid

API = "/api/v1"
UNITS = {"voice": "seconds", "sms": "messages", "data": "octets"}


async def current(request: Request) -> AccessClaims:
    """The subscriber the access token names (401 TOKEN_INVALID otherwise). A coroutine, though it
    awaits nothing: FastAPI runs a plain function dependency on its thread pool, a thread hop for
    every request of a subscriber (5% of the balance query's throughput)."""
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
    who = await current(request)
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


def package_json(p: Any) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "price": {"kurus": p.price, "tl": format_tl(p.price)},
        "allowances": {service.value: units for service, units in p.allowances.items()},
        "validityDays": p.validity_days,
    }
