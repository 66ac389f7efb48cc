"""An SMPP 3.4 ESME on asyncio: one transceiver bind to an SMSC, kept alive and re-made.

- bind_transceiver with system_id/password; a refused bind is logged with the SMSC's reason
  (never the password) and retried with exponential backoff, like a lost connection;
- enquire_link every `enquire_link_interval` seconds; no answer within `response_timeout` means
  the link is dead: the connection is dropped and made again;
- at most `window` requests wait for their responses at once; each waits `response_timeout`;
- every deliver_sm gets its deliver_sm_resp (ESME_ROK once the handler took it, ESME_RSYSERR if the
  handler raised, so the SMSC delivers it again); an unbind from the SMSC is answered and the
  ESME binds again;
- an unreadable PDU gets a generic_nack with the reason and the session goes on; only a
  command_length that cannot be followed (the stream has lost its frames) closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from cellcelly.errors import ProtocolError
from cellcelly.sms.pdu import (
    HEADER_SIZE,
    MAX_SEQUENCE,
    RESPONSE,
    Bind,
    Body,
    CommandId,
    FramingError,
    MessageIdResp,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    decode,
    encode,
    encode_body,
    generic_nack,
    parse_header,
    response_to,
    status_name,
)

log = logging.getLogger(__name__)

DeliverHandler = Callable[[ShortMessage], None]


class SmppError(ProtocolError):
    """Something an SMPP request could not do; the notifier retries what raised."""


class BindRefused(SmppError):
    def __init__(self, status: int) -> None:
        super().__init__(f"the SMSC refused the bind: {status_name(status)}")
        self.status = status


class SubmitRefused(SmppError):
    def __init__(self, status: int, command: str = "submit_sm_resp") -> None:
        super().__init__(f"the SMSC refused the message: {command} {status_name(status)}")
        self.status = status


class NotBound(SmppError):
    pass


class ResponseTimeout(SmppError):
    pass


class ConnectionLost(SmppError):
    pass


@dataclass
class EsmeStats:
    connects: int = 0
    binds: int = 0
    bind_refusals: int = 0
    submitted: int = 0
    delivered: int = 0
    nacks_sent: int = 0
    enquire_links: int = 0


class Esme:
    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        system_type: str = "",
        on_deliver: DeliverHandler | None = None,
        enquire_link_interval: float = 30.0,
        response_timeout: float = 10.0,
        window: int = 10,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self._bind = Bind(system_id, password, system_type)
        encode_body(CommandId.BIND_TRANSCEIVER, self._bind)  # a too long system_id fails here, not later
        self.on_deliver = on_deliver
        self.enquire_link_interval, self.response_timeout = enquire_link_interval, response_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.connect_timeout = connect_timeout
        self.window = asyncio.Semaphore(window)
        self.bound = asyncio.Event()
        self.stats = EsmeStats()
        self.last_error: str | None = None
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- public ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting in the background: the SMSC may be down now and up later."""
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self.bound.is_set():
            with contextlib.suppress(SmppError, OSError):
                await self._request(CommandId.UNBIND, None, timeout=min(2.0, self.response_timeout))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._close()

    async def wait_bound(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.bound.wait(), timeout)
        except TimeoutError:
            reason = f" ({self.last_error})" if self.last_error else ""
            raise NotBound(f"not bound to the SMSC {self.host}:{self.port}{reason}") from None

    async def submit(self, sm: ShortMessage, bind_wait: float | None = None) -> str:
        """Send one submit_sm and return the SMSC's message_id; raises SmppError on any failure."""
        if not self.bound.is_set():
            await self.wait_bound(self.response_timeout if bind_wait is None else bind_wait)
        async with self.window:
            response = await self._request(CommandId.SUBMIT_SM, sm)
        if response.command_id == CommandId.GENERIC_NACK:
            raise SubmitRefused(response.status, "generic_nack")
        if response.status != Status.ESME_ROK:
            raise SubmitRefused(response.status)
        self.stats.submitted += 1
        body = response.body
        return body.message_id if isinstance(body, MessageIdResp) else ""

    # --- connection ------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.reconnect_min
        while not self._stopping:
            was_bound = False
            try:
                was_bound = await self._session()
            except BindRefused as exc:
                self.stats.bind_refusals += 1
                self.last_error = str(exc)
                log.error(
                    "SMSC refused the bind",
                    extra={
                        "smsc": f"{self.host}:{self.port}",
                        "system_id": self._bind.system_id,
                        "status": status_name(exc.status),
                        "retry_in": round(delay, 2),
                    },
                )
            except (OSError, SmppError, asyncio.IncompleteReadError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "SMSC connection failed",
                    extra={
                        "smsc": f"{self.host}:{self.port}",
                        "error": self.last_error,
                        "retry_in": round(delay, 2),
                    },
                )
            finally:
                self._close()
            if self._stopping:
                break
            if was_bound:
                delay = self.reconnect_min
                log.warning(
                    "SMSC connection ended; binding again", extra={"smsc": f"{self.host}:{self.port}"}
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect_max)

    async def _session(self) -> bool:
        """One connection: bind, then serve until it ends. True if it got bound."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        self.stats.connects += 1
        self._writer = writer
        reading = asyncio.ensure_future(self._read_loop(reader))
        keepalive: asyncio.Future[None] | None = None
        try:
            response = await self._request(CommandId.BIND_TRANSCEIVER, self._bind)
            if response.command_id == CommandId.GENERIC_NACK or response.status != Status.ESME_ROK:
                raise BindRefused(response.status)
            self.stats.binds += 1
            self.last_error = None
            self.bound.set()
            log.info(
                "bound to the SMSC",
                extra={"smsc": f"{self.host}:{self.port}", "system_id": self._bind.system_id},
            )
            keepalive = asyncio.ensure_future(self._keepalive())
            done, _ = await asyncio.wait({reading, keepalive}, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()  # raises why it ended (a dead link), or returns on a clean close
            return True
        finally:
            self.bound.clear()
            for running in (reading, keepalive):
                if running is not None and not running.done():
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await running

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.enquire_link_interval)
            await self._request(CommandId.ENQUIRE_LINK, None)
            self.stats.enquire_links += 1

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._fail_pending(ConnectionLost("the SMSC connection closed"))

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    # --- requests and responses ------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._seq = self._seq % MAX_SEQUENCE + 1
        return self._seq

    def _send(self, pdu: Pdu) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionLost("not connected to the SMSC")
        self._writer.write(encode(pdu))

    async def _request(self, command: CommandId, body: Body, timeout: float | None = None) -> Pdu:
        sequence = self._next_sequence()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self._send(Pdu(command, sequence, 0, body))
            try:
                return await asyncio.wait_for(future, self.response_timeout if timeout is None else timeout)
            except TimeoutError:
                raise ResponseTimeout(
                    f"no response to {command.name.lower()} #{sequence} in "
                    f"{self.response_timeout if timeout is None else timeout} s"
                ) from None
        finally:
            self._pending.pop(sequence, None)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readexactly(HEADER_SIZE)
                try:
                    length = parse_header(head)[0]
                except FramingError as exc:
                    # the frames are lost: say why, then drop the connection (and bind again)
                    self._nack(exc)
                    raise ConnectionLost(str(exc)) from None
                frame = head + await reader.readexactly(length - HEADER_SIZE)
                try:
                    pdu = decode(frame)
                except PduError as exc:
                    self._unreadable(exc)
                    continue
                self._dispatch(pdu)
        except asyncio.IncompleteReadError:
            log.info("the SMSC closed the connection", extra={"smsc": f"{self.host}:{self.port}"})
        finally:
            self._fail_pending(ConnectionLost("the SMSC connection closed"))

    def _nack(self, exc: PduError) -> None:
        log.warning(
            "unreadable PDU answered with generic_nack",
            extra={"error": str(exc), "status": status_name(exc.status), "sequence": exc.sequence},
        )
        with contextlib.suppress(ConnectionLost):
            self._send(generic_nack(exc.sequence, exc.status))
            self.stats.nacks_sent += 1

    def _unreadable(self, exc: PduError) -> None:
        if exc.command_id == CommandId.ALERT_NOTIFICATION:
            log.info("alert_notification ignored")  # it has no response in SMPP 3.4
        elif exc.command_id & RESPONSE:
            # a response is never nacked; the request it answers fails
            future = self._pending.get(exc.sequence)
            log.warning("unreadable response", extra={"error": str(exc), "sequence": exc.sequence})
            if future is not None and not future.done():
                future.set_exception(SmppError(f"unreadable response: {exc}"))
        else:
            self._nack(exc)

    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.is_response:
            future = self._pending.get(pdu.sequence)
            if future is None or future.done():
                log.warning("response to no request", extra={"command": pdu.name, "sequence": pdu.sequence})
            else:
                future.set_result(pdu)
            return
        if pdu.command_id == CommandId.DELIVER_SM:
            status: int = Status.ESME_ROK
            assert isinstance(pdu.body, ShortMessage)
            try:
                if self.on_deliver is not None:
                    self.on_deliver(pdu.body)
                self.stats.delivered += 1
            except Exception:
                log.exception("deliver_sm handler failed: the SMSC will deliver it again")
                status = Status.ESME_RSYSERR
            self._send(response_to(pdu, status, MessageIdResp("")))
        elif pdu.command_id == CommandId.ENQUIRE_LINK:
            self._send(response_to(pdu))
        elif pdu.command_id == CommandId.UNBIND:
            self._send(response_to(pdu))
            log.warning("the SMSC unbound us", extra={"smsc": f"{self.host}:{self.port}"})
            self.bound.clear()
            if self._writer is not None:
                self._writer.close()  # the read loop ends; _run binds again unless stopping
        else:
            # submit_sm or a bind sent to an ESME: a request we do not serve
            log.warning("request not served by an ESME", extra={"command": pdu.name})
            self._send(generic_nack(pdu.sequence, Status.ESME_RINVCMDID))
            self.stats.nacks_sent += 1
