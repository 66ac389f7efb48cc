"""Money as integer kuruş (1 TL = 100 kuruş). Floats never touch a balance."""

from __future__ import annotations

import re

from cellcelly.domain.errors import DomainError

KURUS_PER_TL = 100

_AMOUNT = re.compile(r"^(?P<sign>-?)(?P<whole>\d+)(?:\.(?P<frac>\d{1,2}))?$")


def parse_tl(text: object) -> int:
    """Parse a TL amount written as text ("0.95", "100", "12.5") into kuruş.

    Ints are taken as whole lira. More than two decimals is refused rather than rounded:
    a price in a tariff file must say exactly what it charges.
    """
    if isinstance(text, bool):
        raise DomainError(f"not an amount: {text!r}")
    if isinstance(text, int):
        return text * KURUS_PER_TL
    if isinstance(text, float):  # an unquoted YAML price: its shortest text is what was written
        text = repr(text)
    if not isinstance(text, str):
        raise DomainError(f"not a TL amount: {text!r}")
    match = _AMOUNT.match(text.strip())
    if match is None:
        raise DomainError(f"not a TL amount with at most 2 decimals: {text!r}")
    frac = (match["frac"] or "").ljust(2, "0")
    value = int(match["whole"]) * KURUS_PER_TL + int(frac)
    return -value if match["sign"] else value


def format_tl(kurus: int) -> str:
    """Format kuruş as a TL amount with two decimals ("12.50")."""
    sign = "-" if kurus < 0 else ""
    whole, frac = divmod(abs(kurus), KURUS_PER_TL)
    return f"{sign}{whole}.{frac:02d}"


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling division for non-negative numerators (no float rounding)."""
    return -(-numerator // denominator)


def rated_cost(units: int, price: int, per: int) -> int:
    """Kuruş for `units` at `price` kuruş per `per` units, rounded up to the next kuruş.

    Charging applies it to the cumulative usage of a session's rating group, so splitting usage
    over many updates never costs more or less than reporting it at once.
    """
    return ceil_div(units * price, per)


def affordable_units(already: int, money: int, price: int, per: int) -> int:
    """Most units beyond `already` whose extra cost fits in `money` kuruş (a priced rate).

    The fraction of a kuruş already paid by rounding `already` up counts towards them.
    """
    return max(0, (rated_cost(already, price, per) + max(0, money)) * per // price - already)
