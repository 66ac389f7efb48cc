"""Services and their integer units: voice in seconds, SMS in messages, data in octets."""

from __future__ import annotations

import re
from enum import StrEnum

from cellcelly.domain.errors import DomainError


class Service(StrEnum):
    VOICE = "voice"
    SMS = "sms"
    DATA = "data"


_BY_VALUE: dict[str, Service] = {s.value: s for s in Service}


def service_of(value: str) -> Service:
    """`Service(value)` for the decoders of every record and event: calling an Enum costs ~1 µs
    (its metaclass's `__call__`), a lookup a tenth of that. ValueError for what is not a service."""
    found = _BY_VALUE.get(value)
    if found is None:
        raise ValueError(f"{value!r} is not a service")
    return found


# Data sizes are binary (1 MB = 1024 KB), as Turkish operators count package allowances.
_UNIT_FACTORS: dict[str, tuple[Service, int]] = {
    "s": (Service.VOICE, 1),
    "sec": (Service.VOICE, 1),
    "min": (Service.VOICE, 60),
    "msg": (Service.SMS, 1),
    "sms": (Service.SMS, 1),
    "b": (Service.DATA, 1),
    "kb": (Service.DATA, 1024),
    "kib": (Service.DATA, 1024),
    "mb": (Service.DATA, 1024**2),
    "mib": (Service.DATA, 1024**2),
    "gb": (Service.DATA, 1024**3),
    "gib": (Service.DATA, 1024**3),
}

_QUANTITY = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")


def parse_quantity(text: object, service: Service) -> int:
    """Parse "3000 min", "3 GB", "60 s", "1 msg" into the service's base unit.

    A bare integer is taken as base units already. A unit of another service is refused,
    so "3 GB" can never become minutes by a typo in the catalogue.
    """
    if isinstance(text, bool):
        raise DomainError(f"not a quantity: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise DomainError(f"negative quantity: {text}")
        return text
    if not isinstance(text, str):
        raise DomainError(f"not a quantity like '60 s' or '3 GB': {text!r}")
    match = _QUANTITY.match(text)
    if match is None:
        raise DomainError(f"not a quantity like '60 s' or '3 GB': {text!r}")
    amount, unit = int(match[1]), match[2].lower()
    if unit not in _UNIT_FACTORS:
        raise DomainError(f"unknown unit {unit!r} in {text!r}")
    unit_service, factor = _UNIT_FACTORS[unit]
    if unit_service is not service:
        raise DomainError(f"{text!r} is a {unit_service.value} quantity, expected {service.value}")
    return amount * factor
