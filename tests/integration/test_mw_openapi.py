"""The MW's OpenAPI document describes every answer: each operation documents its success and its
errors with a schema, and every answer the API really gives on a journey through every operation
(successes and errors alike) is documented for its status and matches the schema given there."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from mw_harness import KEY, PASSWORD, Harness, harness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADMIN = {"Authorization": "Bearer " + "a" * 40}
PROBLEM = "application/problem+json"
A, B = "5321112233", "5339998877"


@pytest.fixture
async def mw(tmp_path: Path) -> AsyncIterator[Harness]:
    async with harness(tmp_path / "data", admin_token="a" * 40) as h:
        yield h


async def _document(mw: Harness) -> dict[str, Any]:
    response = await mw.client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


async def test_every_operation_documents_its_answers_with_schemas(mw: Harness) -> None:
    doc = await _document(mw)
    operations = _operations(doc)
    assert len(operations) >= 20
    # FastAPI's own 422 validation answer: this API answers a body that does not validate 400
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in operations:
        where = f"{method} {path}"
        answers = op["responses"]
        successes = [s for s in answers if s.startswith("2")]
        assert successes, f"{where}: no success documented"
        for status in successes:
            if status != "204":
                assert any("schema" in c for c in answers[status]["content"].values()), where
        if path.startswith("/api/"):
            assert "default" in answers, f"{where}: no default error answer"
        for status, answer in answers.items():
            if not status.startswith("2") and path.startswith("/api/"):
                assert answer["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}, (
                    where,
                    status,
                )


class Checker:
    """Every answer checked against the document: its status documented (or `default`), its
    content type the one documented, its body valid against the schema."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.routes = [
            (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path, op)
            for method, path, op in _operations(doc)
        ]
        self.seen: set[tuple[str, str, str]] = set()

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        path = request.url.path
        matches = [(t, op) for m, rx, t, op in self.routes if m == request.method and rx.match(path)]
        if not matches:
            assert response.status_code in (404, 405), f"{request.method} {path}: not in the document"
            return
        template, op = matches[0]
        status = str(response.status_code)
        answers = op["responses"]
        answer = answers.get(status) or answers.get("default")
        assert answer is not None, f"{request.method} {template}: {status} is not documented"
        self.seen.add((request.method, template, status))
        if not response.content:
            assert "content" not in answer or status == "204", (template, status)
            return
        kind = response.headers["content-type"].split(";")[0]
        assert kind in answer["content"], f"{request.method} {template} {status}: {kind} not documented"
        schema = {**answer["content"][kind]["schema"], "components": self.doc["components"]}
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(response.json())]
        assert not errors, (request.method, template, status, response.text, errors)


async def test_every_answer_matches_the_document(mw: Harness) -> None:
    doc = await _document(mw)
    checker = Checker(doc)
    mw.client.event_hooks["response"].append(checker)
    c = mw.client
    v1 = "/api/v1"

    assert (await mw.register(A)).status_code == 201
    assert (await mw.register(A)).status_code == 409
    assert (await mw.register(B, password="short")).status_code == 400
    assert (await mw.register(B, package="NOPE")).status_code == 422
    assert (await mw.login(A, "Wrong-Parola1")).status_code == 401
    login = await mw.login(A)
    me = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    refreshed = await c.post(f"{v1}/auth/refresh", json={"refreshToken": login.json()["refreshToken"]})
    assert refreshed.status_code == 200
    assert (await c.post(f"{v1}/auth/refresh", json={"refreshToken": "x"})).status_code == 401
    assert (await c.post(f"{v1}/auth/forgot", json={"msisdn": A})).status_code == 202
    for task in list(mw.selfcare._background):  # the code is sent after the answer
        await task
    reset = {"msisdn": A, "code": "000000", "securityKey": KEY, "newPassword": PASSWORD}
    assert (await c.post(f"{v1}/auth/reset", json=reset)).status_code == 400
    reset["code"] = mw.outbox.last_code(A)
    assert (await c.post(f"{v1}/auth/reset", json=reset)).status_code == 204

    assert (await c.get(f"{v1}/me")).status_code == 401
    assert (await c.get(f"{v1}/me", headers=me)).status_code == 200
    assert (await c.get(f"{v1}/me/balance", headers=me)).status_code == 200
    assert (await c.get(f"{v1}/me/usage", headers=me)).status_code == 200
    assert (await c.get(f"{v1}/me/usage?limit=0", headers=me)).status_code == 400
    assert (await c.get(f"{v1}/packages")).status_code == 200
    assert (await c.post(f"{v1}/me/packages", headers=me, json={"package": "NOPE"})).status_code == 422
    assert (await c.post(f"{v1}/me/topup", headers=me, json={"voucher": "1" * 16})).status_code == 404

    assert (await c.get(f"{v1}/admin/subscribers", headers=me)).status_code == 403
    assert (await c.get(f"{v1}/admin/subscribers", headers=ADMIN)).status_code == 200
    vouchers = await c.post(f"{v1}/admin/vouchers", headers=ADMIN, json={"amount": "500.00"})
    assert vouchers.status_code == 201
    code = vouchers.json()["items"][0]["code"]
    assert (await c.post(f"{v1}/admin/vouchers", headers=ADMIN, json={"amount": "0"})).status_code == 400
    assert (await c.post(f"{v1}/me/topup", headers=me, json={"voucher": code})).status_code == 200
    assert (await c.post(f"{v1}/me/topup", headers=me, json={"voucher": code})).status_code == 409
    packages = (await c.get(f"{v1}/packages")).json()["items"]
    bought = await c.post(f"{v1}/me/packages", headers=me, json={"package": packages[0]["code"]})
    assert bought.status_code == 201
    renewal = f"{v1}/me/renewals/{packages[0]['code']}"
    assert (await c.put(renewal, headers=me, json={"renew": True})).status_code == 200
    assert (await c.get(f"{v1}/me/renewals", headers=me)).status_code == 200
    assert (await c.put(f"{v1}/me/renewals/NOPE", headers=me, json={"renew": True})).status_code == 422
    status = f"{v1}/admin/subscribers/{A}/status"
    assert (await c.put(status, headers=ADMIN, json={"status": "active"})).status_code == 200
    assert (
        await c.put(f"{v1}/admin/subscribers/{A}/role", headers=ADMIN, json={"role": "subscriber"})
    ).status_code == 200
    unknown_role = await c.put(f"{v1}/admin/subscribers/{B}/role", headers=ADMIN, json={"role": "admin"})
    assert unknown_role.status_code == 404
    catalogue = await c.get(f"{v1}/admin/catalogue", headers=ADMIN)
    assert catalogue.status_code == 200
    put = await c.put(f"{v1}/admin/catalogue", headers=ADMIN, content=catalogue.json()["source"])
    assert put.status_code == 200
    assert (await c.put(f"{v1}/admin/catalogue", headers=ADMIN, content="tariffs: 7")).status_code == 422

    password = {"currentPassword": PASSWORD, "newPassword": "Yeni-Parola2"}
    assert (await c.post(f"{v1}/me/password", headers=me, json=password)).status_code == 204
    assert (await c.post(f"{v1}/auth/logout", json={"refreshToken": "x"})).status_code == 204
    assert (await c.get("/healthz")).status_code == 200
    assert (await c.get("/readyz")).status_code == 200
    assert (await c.post(f"{v1}/me/balance", headers=me)).status_code == 405
    assert (await c.post(f"{v1}/auth/login", content=b"x" * 20_000)).status_code == 413

    # every operation of the document answered at least once with a success
    succeeded = {(m, t) for m, t, s in checker.seen if s.startswith("2")}
    assert succeeded == {(m, t) for m, t, _ in _operations(doc)}
