"""Charging requests from bytes to bytes: parse, validate, charge, encode.

`ChargingHandler.handle` never raises: every failure becomes a ProblemDetails answer, so the
FastAPI routes and the ASGI fast path (`FastPath`) behave identically. Both check the caller's key
(`Authorization: Bearer <CELLCELLY_OCS_API_KEY>`, see `ocs/auth.py`) before reading the body.

A create must be named, so that a retry is recognised and charged once: by `sessionId` (the
Diameter Session-Id of a charging session) or, for a client without one, by an `Idempotency-Key`
header, which then serves as the session's id: the same key again gets the stored answer
(kept `answer_retention` seconds after the event, like every finished session's answers).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from pydantic import ValidationError

from cellcelly.application.charging import ChargingService
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.limits import MAX_SESSION_ID, MAX_UNITS, session_id_fits, units_fit
from cellcelly.ocs.auth import ApiKey
from cellcelly.ocs.metrics import OcsMetrics
from cellcelly.ocs.schemas import HTTP_STATUS, RESULT_NAMES, ChargingDataRequest
from cellcelly.web import MAX_BODY, PROBLEM, HttpProblem, problem_payload, validation_problem

log = logging.getLogger(__name__)
API = "/nchf-convergedcharging/v3"
JSON = "application/json"

# (status, body, media type, extra headers)
Reply = tuple[int, bytes, str, dict[str, str] | None]

# it becomes the session id, so it may be what a sessionId may be
_IDEMPOTENCY_KEY = re.compile(rb"^[\x21-\x7e]{1,%d}$" % MAX_SESSION_ID)
_UNIT_FIELD = {"voice": "time", "sms": "serviceSpecificUnits", "data": "totalVolume"}


def to_domain(body: ChargingDataRequest, request_type: RequestType, session_id: str) -> ChargeRequest:
    services = []
    for mu in body.multipleUnitUsage:
        service = mu.service()
        if service is None:
            raise HttpProblem(
                400,
                "Bad request",
                f"rating group {mu.ratingGroup}: say serviceType or give units",
                "INVALID_MSG_FORMAT",
            )
        requested = None if mu.requestedUnit is None else mu.requestedUnit.amount(service)
        if request_type is RequestType.TERMINATE:
            requested = 0
        used = 0
        for container in mu.usedUnitContainer:
            used += container.amount(service) or 0
        if not (units_fit(used) and (requested is None or units_fit(requested))):
            # each field is within MAX_UNITS (schemas.py); their sum must be too: one usage record
            raise _too_large(
                f"multipleUnitUsage (ratingGroup {mu.ratingGroup})", f"units above {MAX_UNITS} in all"
            )
        services.append(ServiceUsage(mu.ratingGroup, service, requested, used, mu.destination.lstrip("+")))
    if not session_id_fits(session_id):  # the path's chargingDataRef is not checked by the schema
        raise _too_large("chargingDataRef", f"1 to {MAX_SESSION_ID} characters")
    return ChargeRequest(
        session_id,
        request_type,
        body.invocationSequenceNumber,
        body.subscriberIdentifier or "",
        tuple(services),
        body.location,
    )


def _too_large(param: str, reason: str) -> HttpProblem:
    """Beyond what the system of record holds (`domain/limits.py`)."""
    return HttpProblem(
        400,
        "Bad request",
        f"{param}: {reason}",
        "INVALID_MSG_FORMAT",
        invalidParams=[{"param": param, "reason": reason}],
    )


# each command- or MSCC-level result as the answer writes it: its name and its Diameter code
_RESULTS: dict[ResultCode, tuple[str, int]] = {
    code: (name.value, int(code)) for code, name in RESULT_NAMES.items()
}
_KIND_NAMES = {kind: kind.name for kind in RequestType}  # an enum's .name is a descriptor: ~1 µs
_stamp = (0, "")  # the second and its invocationTimeStamp: formatted once a second


def _timestamp() -> str:
    global _stamp
    now = int(time.time())
    if now != _stamp[0]:
        _stamp = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return _stamp[1]


def answer_json(answer: ChargeAnswer, req: ChargeRequest) -> dict[str, Any]:
    """The Nchf answer's JSON (every charge's: written for its cost, ~10 µs a charge before)."""
    infos = []
    for r in answer.services:
        name, code = _RESULTS[r.result_code]
        info: dict[str, Any] = {"ratingGroup": r.rating_group, "resultCode": name, "diameterResultCode": code}
        if r.granted:
            field = "serviceSpecificUnits"
            for u in req.services:
                if u.rating_group == r.rating_group:
                    field = _UNIT_FIELD[u.service]
                    break
            info["grantedUnit"] = {field: r.granted}
        if r.validity_time is not None:
            info["validityTime"] = r.validity_time
        if r.final_unit:
            if r.redirect_url:  # TS 32.291's FinalUnitIndication with its RedirectServer
                info["finalUnitIndication"] = {
                    "finalUnitAction": "REDIRECT",
                    "redirectServer": {"redirectAddressType": "URL", "redirectServerAddress": r.redirect_url},
                }
            else:
                info["finalUnitIndication"] = {"finalUnitAction": "TERMINATE"}
        if r.quota_holding_time:
            info["quotaHoldingTime"] = r.quota_holding_time
        infos.append(info)
    name, code = _RESULTS[answer.result_code]
    return {
        "chargingDataRef": answer.session_id,
        "invocationSequenceNumber": answer.request_number,
        "invocationTimeStamp": _timestamp(),
        "invocationResult": {"resultCode": name, "diameterResultCode": code},
        "multipleUnitInformation": infos,
    }


def problem_reply(problem: HttpProblem) -> Reply:
    return problem.status, problem_payload(problem), PROBLEM, None


class ChargingHandler:
    def __init__(self, charging: ChargingService, metrics: OcsMetrics, api_key: ApiKey) -> None:
        self.charging = charging
        self.metrics = metrics
        self.api_key = api_key

    def refusal(self, authorization: bytes | str | None) -> Reply | None:
        """None when the caller presented the key; else the 401 (or 503: no key configured) to send."""
        if self.api_key.matches_bearer(authorization):
            return None
        if not self.api_key.configured:
            problem = HttpProblem(
                503, "Charging API closed", "this OCS has no CELLCELLY_OCS_API_KEY: it charges nobody"
            )
            headers = None
        else:
            problem = HttpProblem(
                401,
                "Unauthorized",
                "charging needs Authorization: Bearer <the OCS API key>",
                "UNAUTHORIZED",
            )
            headers = {"www-authenticate": 'Bearer realm="cellcelly-ocs"'}
        self.metrics.rejected.labels(str(problem.status)).inc()
        return problem.status, problem_payload(problem), PROBLEM, headers

    async def handle(self, op: str, ref: str, raw: bytes, idempotency_key: bytes | None = None) -> Reply:
        """One charging request from a caller already let in (`refusal` returned None). A
        coroutine so that a store on a server (VoltDB) is awaited, never waited for on the loop."""
        try:
            return await self._handle(op, ref, raw, idempotency_key)
        except HttpProblem as problem:
            self.metrics.rejected.labels(str(problem.status)).inc()
            return problem_reply(problem)

    async def _handle(self, op: str, ref: str, raw: bytes, idempotency_key: bytes | None) -> Reply:
        try:
            body = ChargingDataRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        if op == "noop":
            req = to_domain(body, RequestType.EVENT, body.sessionId or "noop")
            answer = ChargeAnswer(req.session_id, req.request_type, req.request_number, ResultCode.SUCCESS)
            return 200, orjson.dumps(answer_json(answer, req)), JSON, None
        if op == "create":
            if body.subscriberIdentifier is None:
                raise HttpProblem(
                    400, "Bad request", "subscriberIdentifier is required", "MANDATORY_IE_MISSING"
                )
            kind = RequestType.EVENT if body.oneTimeEvent else RequestType.INITIAL
            ref = body.sessionId or _idempotency_key(idempotency_key)
        else:
            kind = RequestType.UPDATE if op == "update" else RequestType.TERMINATE
        req = to_domain(body, kind, ref)
        started = time.perf_counter()
        answer = await self.charging.charge_async(req)
        self.metrics.charged(_KIND_NAMES[kind], int(answer.result_code), time.perf_counter() - started)
        status = HTTP_STATUS[answer.result_code]
        headers = None
        if kind is RequestType.INITIAL and answer.result_code is ResultCode.SUCCESS:
            status = 201
            headers = {"location": f"{API}/chargingdata/{answer.session_id}"}
        return status, orjson.dumps(answer_json(answer, req)), JSON, headers


def _idempotency_key(value: bytes | None) -> str:
    """The session id an unnamed create takes from its Idempotency-Key (a made-up id would charge a
    retry again)."""
    if value is None:
        raise HttpProblem(
            400,
            "Bad request",
            "a create needs sessionId (a charging session) or an Idempotency-Key header (a one-time"
            " event), so that a retry is answered from the first and not charged again",
            "MANDATORY_IE_MISSING",
        )
    if not _IDEMPOTENCY_KEY.match(value):
        raise HttpProblem(
            400,
            "Bad request",
            f"Idempotency-Key: 1 to {MAX_SESSION_ID} visible ASCII characters",
            "INVALID_MSG_FORMAT",
            invalidParams=[
                {"param": "Idempotency-Key", "reason": f"1 to {MAX_SESSION_ID} visible ASCII characters"}
            ],
        )
    return value.decode("ascii")


_ROUTE = re.compile(rf"^{re.escape(API)}/(?:(chargingdata)|(noop)|chargingdata/([^/]+)/(update|release))$")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FastPath:
    """Serves the charging POSTs straight from ASGI, in front of the FastAPI app.

    FastAPI's layers (routing, dependency solving, several middlewares) cost more than charging
    itself; `make bench` shows the difference. Everything else goes on to FastAPI unchanged.
    """

    def __init__(self, app: ASGIApp, handler: ChargingHandler) -> None:
        self.app = app
        self.handler = handler
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _ROUTE.match(scope["path"])
            if match is not None:
                await self._serve(match, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, match: re.Match[str], scope: Scope, receive: Receive, send: Send) -> None:
        if match[1]:
            op, ref = "create", ""
        elif match[2]:
            op, ref = "noop", ""
        else:
            op, ref = match[4], match[3]
        authorization = idempotency_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"idempotency-key":
                idempotency_key = value
        result = self.handler.refusal(authorization)  # before the body: a stranger costs no parsing
        if result is None:
            raw = await self._body(scope, receive)
            if raw is None:
                result = problem_reply(HttpProblem(413, "Payload too large", f"at most {MAX_BODY} bytes"))
            else:
                result = await self.handler.handle(op, ref, raw, idempotency_key)
        status, payload, media_type, extra = result
        headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(payload)).encode())]
        if extra:
            headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    async def _body(scope: Scope, receive: Receive) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
