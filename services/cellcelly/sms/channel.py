"""SMS out: the notifier's channel and one-time codes, from the short code (or a name) to 90XXXXXXXXXX."""

from __future__ import annotations

import itertools
import logging
import random

from cellcelly.domain.msisdn import Msisdn
from cellcelly.ports.records import SubscriberRecord
from cellcelly.sms.encoding import encode_text
from cellcelly.sms.esme import Esme
from cellcelly.sms.pdu import Npi, ShortMessage, Ton
from cellcelly.sms.service import Address, international

log = logging.getLogger(__name__)


def sender_address(sender: str) -> Address:
    """A digit string is a short code (network specific); anything else an alphanumeric name."""
    if sender.isdigit() and len(sender) <= 8:
        return Address(sender, Ton.NETWORK_SPECIFIC, Npi.UNKNOWN)
    if sender.lstrip("+").isdigit():
        return Address(sender.lstrip("+"), Ton.INTERNATIONAL, Npi.ISDN)
    if len(sender) > 11:
        raise ValueError("an alphanumeric sender is at most 11 characters")
    return Address(sender, Ton.ALPHANUMERIC, Npi.UNKNOWN)


def compact(text: str) -> str:
    """One paragraph: e-mail style blank lines and line breaks cost SMS characters for nothing."""
    return " ".join(text.split())


def shorten(text: str, max_parts: int) -> str:
    """`text`, cut at a word and ended with "…" if it would need more than `max_parts` parts."""
    if len(encode_text(text)) <= max_parts:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis (parts grow with the length)
        mid = (lo + hi + 1) // 2
        if len(encode_text(text[:mid] + "…")) <= max_parts:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if space > lo // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


class SmsSender:
    """Splits, numbers and submits texts through an ESME; raises if any part is refused."""

    def __init__(self, esme: Esme, registered_delivery: int = 0) -> None:
        self.esme, self.registered_delivery = esme, registered_delivery
        self._references = itertools.count(random.randrange(256))

    async def send(self, source: Address, to: Address, text: str) -> list[str]:
        segments = encode_text(text, reference=next(self._references) % 256)
        ids = []
        for segment in segments:
            ids.append(
                await self.esme.submit(
                    ShortMessage(
                        source_addr=source.digits,
                        source_addr_ton=source.ton,
                        source_addr_npi=source.npi,
                        destination_addr=to.digits,
                        dest_addr_ton=to.ton,
                        dest_addr_npi=to.npi,
                        esm_class=segment.esm_class,
                        data_coding=segment.data_coding,
                        registered_delivery=self.registered_delivery,
                        short_message=segment.short_message,
                    )
                )
            )
        log.info("SMS sent", extra={"to": to.digits, "parts": len(segments), "message_ids": ids})
        return ids


class SmsChannel:
    """The notifier's `Channel` over SMPP: the notice's text, compacted and cut to `max_parts`."""

    def __init__(self, sender: SmsSender, source: str = "5555", max_parts: int = 4) -> None:
        self.sender, self.source, self.max_parts = sender, sender_address(source), max_parts

    async def send(self, to: SubscriberRecord, subject: str, text: str) -> None:
        body = compact(text) or compact(subject)
        if not body:
            raise ValueError("nothing to send")
        await self.sender.send(
            self.source, international(Msisdn.parse(to.msisdn).national), shorten(body, self.max_parts)
        )

    async def send_sms(self, msisdn: str, text: str) -> None:
        """A one-time code or any short text to a subscriber; the text is logged nowhere."""
        await self.sender.send(
            self.source, international(Msisdn.parse(msisdn).national), shorten(text, self.max_parts)
        )
