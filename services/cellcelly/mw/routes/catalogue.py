"""The add-on packages on sale: public, so the sign-up form can list them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.mw import models as m
from cellcelly.mw.routes.common import API, package_json
from cellcelly.web import json_response


def router(catalogue: CatalogueHolder) -> APIRouter:
    r = APIRouter(prefix=API, tags=["catalogue"])

    @r.get("/packages", response_model=m.Packages, responses=m.problems())
    async def packages() -> Response:
        return json_response({"items": [package_json(p) for p in catalogue.current.packages.values()]})

    return r
