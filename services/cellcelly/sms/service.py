"""What a message to the short code gets back: balances for KALAN, the keyword list for YARDIM,
a helpful answer to anything else. Decides only; `gateway.py` receives and sends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn
from cellcelly.ports.selfcare import BalanceLookup
from cellcelly.sms import replies
from cellcelly.sms.keywords import Keyword, match
from cellcelly.sms.pdu import Npi, Ton

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Address:
    digits: str
    ton: int = Ton.UNKNOWN
    npi: int = Npi.UNKNOWN


@dataclass(frozen=True, slots=True)
class MobileOriginated:
    source: Address
    destination: Address
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    to: Address
    text: str


def international(msisdn: str) -> Address:
    """A subscriber (national 5XXXXXXXXX) as the E.164 address an SMSC routes: 905XXXXXXXXX."""
    return Address(Msisdn(msisdn).international, Ton.INTERNATIONAL, Npi.ISDN)


def subscriber_of(address: Address) -> str | None:
    """The national MSISDN behind a sender address, or None (alphanumeric, foreign, malformed).

    International (TON 1) is 90 + 10 digits; national (TON 2) or unknown may carry the trunk 0.
    """
    if address.ton == Ton.ALPHANUMERIC:
        return None
    text = address.digits.strip()
    if address.ton == Ton.INTERNATIONAL and not text.startswith(("90", "+90")):
        return None
    if text.startswith("0090"):
        text = text[2:]
    try:
        return Msisdn.parse(text, trunk=address.ton in (Ton.NATIONAL, Ton.UNKNOWN)).national
    except InvalidMsisdn:
        return None


def same_number(a: str, b: str) -> bool:
    return a.strip().lstrip("+") == b.strip().lstrip("+")


class SmsService:
    def __init__(
        self,
        lookup: BalanceLookup,
        package_name: Callable[[str], str] | None = None,
        short_code: str = "5555",
    ) -> None:
        self.lookup, self.short_code = lookup, short_code
        self.package_name = package_name or (lambda code: code)

    def for_us(self, mo: MobileOriginated) -> bool:
        return same_number(mo.destination.digits, self.short_code)

    async def answer(self, mo: MobileOriginated) -> Reply | None:
        """The reply from the short code; None when there is nothing to say or no one to say it to."""
        if not self.for_us(mo):
            log.info(
                "message to another short code ignored",
                extra={"destination": mo.destination.digits, "source": mo.source.digits},
            )
            return None
        digits = mo.source.digits.strip().lstrip("+")
        if mo.source.ton == Ton.ALPHANUMERIC or not digits.isascii() or not digits.isdigit():
            log.warning("message from an address that cannot be answered", extra={"source": mo.source.digits})
            return None
        keyword = match(mo.text)
        msisdn = subscriber_of(mo.source)
        to = international(msisdn) if msisdn is not None else Address(digits, mo.source.ton, mo.source.npi)
        if keyword is Keyword.YARDIM:
            return Reply(to, replies.help_text(self.short_code))
        summary = None
        if msisdn is not None:
            try:
                summary = await self.lookup(msisdn)
            except Exception:  # the store is down: say so rather than stay silent
                log.exception("balance lookup failed", extra={"msisdn": msisdn})
                return Reply(to, replies.try_later())
        if summary is None:
            log.info("message from a non-subscriber", extra={"source": mo.source.digits})
            return Reply(to, replies.not_a_subscriber())
        if keyword is Keyword.KALAN:
            return Reply(to, replies.balance(summary, self.package_name))
        log.info("unknown keyword", extra={"msisdn": msisdn})
        return Reply(to, replies.unknown_keyword(self.short_code, mo.text))
