"""Sign-up, login, token refresh and logout, password reset: the routes anyone may call."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cellcelly.application.selfcare import SelfCare
from cellcelly.mw import models as m
from cellcelly.mw import schemas as s
from cellcelly.mw.routes.common import API, session_json
from cellcelly.web import json_response


def router(selfcare: SelfCare) -> APIRouter:
    r = APIRouter(prefix=f"{API}/auth", tags=["auth"])

    @r.post("/register", status_code=201, response_model=m.Registered, responses=m.problems(400, 409, 422))
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

    @r.post("/login", response_model=m.SessionTokens, responses=m.problems(400, 401, 429))
    async def login(body: s.Login) -> Response:
        """Access token (15 min) and refresh token (12 h, or 30 days with rememberMe)."""
        return json_response(session_json(await selfcare.login(body.msisdn, body.password, body.rememberMe)))

    @r.post("/refresh", response_model=m.SessionTokens, responses=m.problems(400, 401))
    async def refresh(body: s.RefreshBody) -> Response:
        """A new pair; the refresh token given is used up."""
        return json_response(session_json(await selfcare.refresh(body.refreshToken)))

    @r.post("/logout", status_code=204, response_class=Response, responses=m.problems(400))
    async def logout(body: s.RefreshBody) -> Response:
        await selfcare.logout(body.refreshToken)
        return Response(status_code=204)

    @r.post("/forgot", status_code=202, response_model=m.Accepted, responses=m.problems(400))
    async def forgot(body: s.Forgot) -> Response:
        """Always 202: whether the number has an account is never told."""
        selfcare.forgot(body.msisdn, body.channel)
        return json_response(
            {"detail": "if the number is registered, a code is on its way; it is valid for 10 minutes"}, 202
        )

    @r.post("/reset", status_code=204, response_class=Response, responses=m.problems(400))
    async def reset(body: s.Reset) -> Response:
        await selfcare.reset(body.msisdn, body.code, body.securityKey, body.newPassword)
        return Response(status_code=204)

    return r
