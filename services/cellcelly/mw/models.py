"""What the self-care API answers, as pydantic models: the OpenAPI document's response schemas.

The routes build their JSON themselves (one `orjson` pass, no model on the hot path) and return it
as a Response, which FastAPI sends as it is; these models only describe it.
`tests/integration/test_mw_openapi.py` checks that every answer the API gives matches them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROBLEM = "application/problem+json"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvalidParam(_Answer):
    param: str
    reason: str
    code: str | None = None


class Problem(BaseModel):
    """RFC 7807 / 3GPP ProblemDetails; `cause` is the stable code clients switch on."""

    model_config = ConfigDict(extra="allow")  # e.g. retryAfter (429), problems (a refused catalogue)
    status: int
    title: str
    detail: str | None = None
    cause: str | None = None
    invalidParams: list[InvalidParam] | None = None


class Money(_Answer):
    kurus: int
    tl: str = Field(examples=["12.50"])


class Allowance(_Answer):
    service: Literal["voice", "sms", "data"]
    unit: Literal["seconds", "messages", "octets"]
    remaining: int
    total: int
    used: int
    validUntil: int | None


class Balance(_Answer):
    msisdn: str
    status: str
    wallet: Money
    allowances: list[Allowance]
    packages: list[str]
    asOf: int
    lowWallet: Money | None = Field(
        default=None,
        description="GET /me/balance only: the catalogue's low-wallet line (a wallet below it is told)",
    )


class SessionTokens(_Answer):
    accessToken: str
    tokenType: Literal["bearer"]
    expiresIn: int
    refreshToken: str
    refreshExpiresIn: int
    role: Literal["subscriber", "admin"]


class Registered(_Answer):
    msisdn: str


class Accepted(_Answer):
    detail: str


class UsageItem(_Answer):
    eventId: str
    service: Literal["voice", "sms", "data"]
    units: int
    unit: Literal["seconds", "messages", "octets"]
    chargedKurus: int
    charged: str
    tariff: str
    occurredAt: int
    fromPackage: bool
    destination: str = Field(description="the number or network called; empty for data")
    packageUnits: int = Field(description="of `units`, taken from package buckets")
    walletUnits: int = Field(description="of `units`, paid from the wallet (`charged`)")


class Usage(_Answer):
    items: list[UsageItem]
    next: str | None = Field(
        default=None, description="`before` for the next (older) page; null on the last page"
    )


class Package(_Answer):
    code: str
    name: str
    price: Money
    allowances: dict[str, int]
    validityDays: int


class Renewals(_Answer):
    items: list[str] = Field(description="codes of the packages renewed from the wallet when they end")


class RenewalSet(_Answer):
    package: str
    renew: bool


class Packages(_Answer):
    items: list[Package]


class Subscriber(_Answer):
    msisdn: str
    firstName: str
    lastName: str
    email: str
    status: str
    package: str
    createdAt: int


class Profile(Subscriber):
    """A subscriber as they see themselves: with the role they signed in with."""

    role: Literal["subscriber", "admin"]


class Subscribers(_Answer):
    items: list[Subscriber]


class RoleSet(_Answer):
    msisdn: str
    role: Literal["subscriber", "admin"]


class Voucher(_Answer):
    code: str
    amount: str


class Vouchers(_Answer):
    items: list[Voucher]


class Tariff(_Answer):
    id: str
    service: Literal["voice", "sms", "data"]
    price: str
    per: int


class Catalogue(_Answer):
    version: str
    source: str
    packages: list[Package]
    tariffs: list[Tariff]


class CatalogueVersion(_Answer):
    version: str


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of an operation, each a ProblemDetails: the ones it gives on purpose, and
    `default` for what any route may answer (400 for a body that does not parse, 413 past 16 KiB,
    500). Declaring them also keeps FastAPI from documenting a 422 the API never sends."""
    answers: dict[int | str, dict[str, Any]] = {
        status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses
    }
    answers["default"] = {"model": Problem, "description": "any other error (ProblemDetails)"}
    return answers


def problem_media_type(document: dict[str, Any]) -> dict[str, Any]:
    """Every error answer of the document as application/problem+json, the type the API sends
    (FastAPI files every model under application/json)."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if not status.startswith("2") and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return document
