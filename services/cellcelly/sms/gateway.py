"""SmsGateway: the SMS channel as one service object the stack starts and stops.

Incoming messages are answered in tasks of their own, after the deliver_sm_resp: the reply's
submit_sm waits for a response that the same reader must read, and a slow balance lookup must
not hold the SMSC's window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cellcelly.ports.selfcare import BalanceLookup
from cellcelly.sms.channel import SmsChannel, SmsSender, sender_address
from cellcelly.sms.encoding import Reassembler, parse_incoming
from cellcelly.sms.esme import Esme, SmppError
from cellcelly.sms.pdu import ESM_TYPE_MASK, ShortMessage
from cellcelly.sms.service import Address, MobileOriginated, SmsService

log = logging.getLogger(__name__)


class SmsGateway:
    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        lookup: BalanceLookup,
        *,
        package_name: Callable[[str], str] | None = None,
        short_code: str = "5555",
        notice_sender: str | None = None,
        system_type: str = "",
        enquire_link_interval: float = 30.0,
        response_timeout: float = 10.0,
        window: int = 10,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        max_parts: int = 4,
    ) -> None:
        self.esme = Esme(
            host,
            port,
            system_id,
            password,
            system_type=system_type,
            on_deliver=self._received,
            enquire_link_interval=enquire_link_interval,
            response_timeout=response_timeout,
            window=window,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
        )
        self.short_code = short_code
        self.service = SmsService(lookup, package_name, short_code)
        self.sender = SmsSender(self.esme)
        self.channel = SmsChannel(self.sender, notice_sender or short_code, max_parts=max_parts)
        self.reassembler = Reassembler()
        self._tasks: set[asyncio.Task[None]] = set()
        self.replies_sent = 0
        self.replies_failed = 0

    async def start(self) -> None:
        """Returns at once; the ESME binds in the background and keeps binding while the SMSC is away."""
        await self.esme.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.esme.stop()

    async def wait_bound(self, timeout: float = 10.0) -> None:
        await self.esme.wait_bound(timeout)

    def _received(self, sm: ShortMessage) -> None:
        if sm.esm_class & ESM_TYPE_MASK:
            log.info("delivery receipt or notification received", extra={"source": sm.source_addr})
            return
        part = parse_incoming(sm)
        text = self.reassembler.add(sm.source_addr, sm.destination_addr, part)
        if text is None:
            return  # more parts to come
        mo = MobileOriginated(
            Address(sm.source_addr, sm.source_addr_ton, sm.source_addr_npi),
            Address(sm.destination_addr, sm.dest_addr_ton, sm.dest_addr_npi),
            text,
        )
        task = asyncio.ensure_future(self._answer(mo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, mo: MobileOriginated) -> None:
        try:
            reply = await self.service.answer(mo)
            if reply is None:
                return
            source = sender_address(self.short_code)
            for attempt in range(3):
                try:
                    await self.sender.send(source, reply.to, reply.text)
                    self.replies_sent += 1
                    return
                except SmppError as exc:
                    log.warning(
                        "reply not sent",
                        extra={"to": reply.to.digits, "error": str(exc), "attempt": attempt + 1},
                    )
                    await asyncio.sleep(1.0 * (attempt + 1))
            self.replies_failed += 1
            log.error("reply given up after 3 attempts", extra={"to": reply.to.digits})
        except Exception:  # one odd message must not end the channel
            self.replies_failed += 1
            log.exception("incoming message not answered", extra={"source": mo.source.digits})
