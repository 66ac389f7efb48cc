"""Administration: subscribers (list, suspend or resume, role), vouchers, the catalogue. Every
route needs an admin: an access token with role admin, or the deployment's admin token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cellcelly.application.selfcare import SelfCare
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Status
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.money import format_tl, parse_tl
from cellcelly.mw import models as m
from cellcelly.mw import schemas as s
from cellcelly.mw.routes.common import API, Admin, balance_json, package_json
from cellcelly.web import HttpProblem, json_response


def router(selfcare: SelfCare, catalogue: CatalogueHolder, now: Callable[[], int]) -> APIRouter:
    r = APIRouter(prefix=f"{API}/admin", tags=["admin"])

    @r.get("/subscribers", response_model=m.Subscribers, responses=m.problems(400, 401, 403))
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

    @r.put("/subscribers/{msisdn}/status", response_model=m.Balance, responses=m.problems(400, 401, 403, 404))
    async def put_status(msisdn: s.Msisdn, body: s.StatusBody, _: Admin) -> Response:
        """Suspend (live sessions are aborted) or resume a subscriber."""
        account = await selfcare.set_status(msisdn, Status(body.status))
        return json_response(balance_json(account, now()))

    @r.put("/subscribers/{msisdn}/role", response_model=m.RoleSet, responses=m.problems(400, 401, 403, 404))
    async def put_role(msisdn: s.Msisdn, body: s.RoleBody, _: Admin) -> Response:
        if not await selfcare.set_role(msisdn, body.role):
            raise HttpProblem(404, "Not found", f"no credential for {msisdn}", "NOT_FOUND")
        return json_response({"msisdn": msisdn, "role": body.role})

    @r.post("/vouchers", status_code=201, response_model=m.Vouchers, responses=m.problems(400, 401, 403))
    async def new_vouchers(body: s.NewVouchers, _: Admin) -> Response:
        """Voucher codes are shown once, here; only their hashes are kept."""
        amount = parse_tl(body.amount)
        if amount <= 0:
            raise HttpProblem(400, "Bad request", "the amount must be positive", "INVALID_INPUT")
        codes = await selfcare.create_vouchers(amount, body.count, body.batch)
        return json_response({"items": [{"code": c, "amount": format_tl(amount)} for c in codes]}, 201)

    @r.get("/catalogue", response_model=m.Catalogue, responses=m.problems(401, 403))
    async def get_catalogue(_: Admin) -> Response:
        """The catalogue in force: tariffs and packages (YAML source and version)."""
        current = catalogue.current
        return json_response(
            {
                "version": current.version,
                "source": current.source,
                "packages": [package_json(p) for p in current.packages.values()],
                "tariffs": [
                    {"id": t.id, "service": t.service.value, "price": format_tl(t.price), "per": t.per}
                    for t in current.tariffs
                ],
            }
        )

    @r.put(
        "/catalogue",
        response_model=m.CatalogueVersion,
        responses=m.problems(401, 403, 422),
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}
        },
    )
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

    return r
