"""Request bodies of the self-care API, checked by the SRS rules with codes the UI translates.

A broken rule raises a pydantic error of type `invalid_field` whose context lists every code
(`needs_upper`, `needs_special`, ...); `cellcelly.mw.app` turns them into ProblemDetails
invalidParams, one entry per code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from cellcelly.domain import selfcare_rules as rules

REASONS = {
    "too_short": "at least 8 characters",
    "too_long": "too long",
    "needs_upper": "needs an upper-case letter",
    "needs_lower": "needs a lower-case letter",
    "needs_special": "needs a special character (not a letter or digit)",
    "msisdn_format": "10 digits starting with 5, digits only",
    "name_format": "letters, spaces, - and ' only",
    "email_format": "not an e-mail address",
    "security_key_format": "4 to 32 characters",
    "code_format": "6 digits",
    "voucher_format": "16 digits",
    "required": "required",
}


def _rule(check: Callable[[str], list[str]]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        problems = check(value)
        if problems:
            raise PydanticCustomError(
                "invalid_field", "; ".join(REASONS.get(p, p) for p in problems), {"codes": problems}
            )
        return value

    return validate


Msisdn = Annotated[str, Field(max_length=32), AfterValidator(_rule(rules.msisdn_problems))]
Password = Annotated[str, Field(max_length=256), AfterValidator(_rule(rules.password_problems))]
Name = Annotated[str, Field(max_length=100), AfterValidator(_rule(rules.name_problems))]
Email = Annotated[str, Field(max_length=254), AfterValidator(_rule(rules.email_problems))]
SecurityKey = Annotated[str, Field(max_length=64), AfterValidator(_rule(rules.security_key_problems))]
Code = Annotated[str, Field(max_length=16), AfterValidator(_rule(rules.code_problems))]
VoucherCode = Annotated[str, Field(max_length=40), AfterValidator(_rule(rules.voucher_problems))]
Secret = Annotated[str, Field(min_length=1, max_length=256)]
PackageCode = Annotated[str, Field(min_length=1, max_length=32)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Register(_Body):
    firstName: Name
    lastName: Name
    msisdn: Msisdn
    email: Email
    password: Password
    securityKey: SecurityKey
    package: PackageCode


class Login(_Body):
    msisdn: Msisdn
    password: Secret
    rememberMe: bool = False


class RefreshBody(_Body):
    refreshToken: Annotated[str, Field(min_length=1, max_length=200)]


class Forgot(_Body):
    msisdn: Msisdn
    channel: Literal["sms", "email"] = "sms"


class Reset(_Body):
    msisdn: Msisdn
    code: Code
    securityKey: Secret
    newPassword: Password


class ChangePassword(_Body):
    currentPassword: Secret
    newPassword: Password


class BuyPackage(_Body):
    package: PackageCode
    requestId: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None


class Renewal(_Body):
    renew: bool


class TopUpVoucher(_Body):
    voucher: VoucherCode


class StatusBody(_Body):
    status: Literal["active", "suspended"]


class NewVouchers(_Body):
    amount: Annotated[str, Field(pattern=r"^\d{1,6}(\.\d{1,2})?$")]  # TL, e.g. "50.00"
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    batch: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")] = ""


class RoleBody(_Body):
    role: Literal["subscriber", "admin"]
