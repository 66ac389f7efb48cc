"""The IVR's SIP user agent server on asyncio UDP: answers calls to the balance number and plays
the caller's balance, then hangs up.

A call: INVITE -> 100 Trying -> 180 Ringing (while the balance is looked up and the prompt is
synthesised) -> 200 OK with our SDP (retransmitted until the ACK, RFC 3261 13.3.1.4) -> ACK ->
RTP to the address in the caller's SDP -> BYE (retransmitted until its final response). Every
response we sent is kept for the transaction's life so a retransmitted request gets the same
answer again. A datagram that breaks the parser or a handler is logged and answered (400/500)
where that is possible; it never stops the server.

Who calls is read from P-Asserted-Identity or From, which any SIP client can write: they are
believed only from the configured trusted peers (the SBC or proxy in front of the IVR, by source
address). An INVITE from anywhere else is refused with 403 Forbidden before any lookup, synthesis or
media: answering it would tell a stranger whose balance they named, or (with an apology prompt)
still send RTP to whatever address the stranger's SDP gives, a reflection a real caller never needs
since real calls reach the IVR through the trusted network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections import Counter
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cellcelly.domain.balance_summary import BalanceSummary
from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn
from cellcelly.ivr.prompt import SERVICE_UNAVAILABLE, PromptAudio, SynthesisError, prompt_sentences
from cellcelly.ivr.rtp import MediaPort, RtpSender
from cellcelly.ivr.sip import (
    MediaOffer,
    NotSip,
    SipError,
    SipMessage,
    header_params,
    name_addr,
    new_branch,
    new_tag,
    parse,
    parse_sdp,
    response,
    sdp_answer,
    uri_hostport,
    uri_user,
)
from cellcelly.ports.selfcare import BalanceLookup

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
SERVER = "CellCelly-IVR"
KNOWN_METHODS = {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}


def masked(msisdn: str | None) -> str:
    return "unknown" if not msisdn else msisdn[:3] + "***" + msisdn[-4:]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(peers: str | Iterable[str]) -> list[Network]:
    """Addresses or networks ("10.0.0.5", "10.1.0.0/16", "::1"), comma-separated or a list;
    a wrong entry raises ValueError (at start, not on the first call)."""
    items = peers.split(",") if isinstance(peers, str) else peers
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


def caller_msisdn(invite: SipMessage) -> str | None:
    """The caller's national MSISDN: P-Asserted-Identity first (set by the network, RFC 3325),
    else From; None when neither holds a subscriber number."""
    for value in [*invite.all("P-Asserted-Identity"), invite.get("From") or ""]:
        try:
            return Msisdn.parse(uri_user(name_addr(value)[0]), trunk=True).national
        except (SipError, InvalidMsisdn):  # not a SIP URI; not a subscriber's number
            continue
    return None


@dataclass(eq=False)
class Call:
    key: tuple[str, str]  # Call-ID, caller's From tag
    invite: SipMessage
    source: tuple[str, int]  # where the INVITE came from
    to_tag: str = field(default_factory=new_tag)
    state: str = "early"  # early -> confirmed -> done
    last_response: bytes | None = None
    final_status: int = 0
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    offer: MediaOffer | None = None
    media: MediaPort | None = None
    sender: RtpSender | None = None
    audio: bytes = b""
    answer: bytes = b""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    msisdn: str | None = None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: IvrService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.service.datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip socket error: %s", exc)


class IvrService:
    def __init__(
        self,
        host: str,
        port: int,
        lookup: BalanceLookup,
        *,
        number: str = "5555",
        audio: PromptAudio | None = None,
        advertise_host: str | None = None,
        ring_seconds: float = 0.0,
        max_calls: int = 50,
        lookup_timeout: float = 3.0,
        t1: float = 0.5,
        trusted_peers: str | Iterable[str] = (),
    ) -> None:
        self.host, self.bind_port, self.lookup, self.number = host, port, lookup, number
        self.audio = audio or PromptAudio()
        self.advertise_host = advertise_host or host
        self.ring_seconds, self.max_calls = ring_seconds, max_calls
        self.lookup_timeout, self.t1, self.t2 = lookup_timeout, t1, 8 * t1
        self.trusted = trusted_networks(trusted_peers)
        self.calls: dict[tuple[str, str], Call] = {}
        self.stats: Counter[str] = Counter()
        self._transport: asyncio.DatagramTransport | None = None
        self._bye_waiters: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.bind_port)
        )
        self._transport = transport
        log.info("IVR listening on udp %s:%d for calls to %s", self.host, self.port, self.number)
        if not self.trusted:
            log.warning("IVR: no trusted SIP peers (CELLCELLY_IVR_TRUSTED_PEERS): every call is refused")

    @property
    def port(self) -> int:
        assert self._transport is not None, "not started"
        return int(self._transport.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        """Hang up live calls (BYE, not waited for long), then close the socket."""
        for call in list(self.calls.values()):
            for task in list(call.tasks):
                task.cancel()
            if call.state == "confirmed":
                self._spawn(self._hang_up(call, wait=1.0), call)
        pending = [t for c in self.calls.values() for t in c.tasks] + list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for task in pending:
            task.cancel()
        for timer in self._timers:
            timer.cancel()
        for call in self.calls.values():
            self._close_media(call)
        self.calls.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # --- datagrams ---------------------------------------------------------------------------

    def datagram(self, data: bytes, source: tuple[str, int]) -> None:
        self.stats["datagrams"] += 1
        try:
            msg = parse(data)
        except NotSip as exc:
            self.stats["dropped"] += 1
            log.info("dropped a non-SIP datagram from %s:%d: %s", *source, exc)
            return
        try:
            if not msg.is_request:
                self._on_response(msg)
            elif msg.method == "ACK":
                if msg.error is None:
                    self._on_ack(msg)
            elif msg.error is not None:
                self.stats["bad_requests"] += 1
                log.info("400 to %s:%d: %s", *source, msg.error)
                self._reply(msg, source, 400, headers=[("Warning", f'399 cellcelly "{msg.error}"')])
            else:
                self._on_request(msg, source)
        except Exception:  # a bug must cost one request, never the server
            self.stats["errors"] += 1
            log.exception("failed to handle a SIP message from %s:%d", *source)
            if msg.is_request and msg.method != "ACK":
                with contextlib.suppress(Exception):
                    self._reply(msg, source, 500)

    def _send(self, data: bytes, to: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, to)

    def _reply(
        self,
        request: SipMessage,
        source: tuple[str, int],
        status: int,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> bytes:
        """Answer to where the request came from (RFC 3261 18.2.2, RFC 3581 rport)."""
        out = response(
            request, status, to_tag=to_tag, headers=[("Server", SERVER), *(headers or [])], body=body
        )
        destination = source
        for i, (name, value) in enumerate(out.headers):
            if name != "Via":
                continue
            params = header_params(value.split(",", 1)[0])
            if "rport" in params:
                value = value.replace(";rport", f";received={source[0]};rport={source[1]}", 1)
                out.headers[i] = (name, value)
            else:
                sent_by = value.split(None, 1)[-1].split(";", 1)[0]
                port = sent_by.rsplit(":", 1)[1] if sent_by.count(":") == 1 else ""
                destination = (source[0], int(port) if port.isdigit() else 5060)
            break
        data = out.to_bytes()
        self._send(data, destination)
        return data

    # --- requests ----------------------------------------------------------------------------

    def _on_request(self, msg: SipMessage, source: tuple[str, int]) -> None:
        forwards = msg.get("Max-Forwards")
        if forwards is not None and int(forwards) == 0 and msg.method != "OPTIONS":
            self._reply(msg, source, 483)
        elif msg.method == "INVITE":
            self._on_invite(msg, source)
        elif msg.method == "BYE":
            self._on_bye(msg, source)
        elif msg.method == "CANCEL":
            self._on_cancel(msg, source)
        elif msg.method == "OPTIONS":
            self._reply(
                msg,
                source,
                200,
                to_tag=new_tag(),
                headers=[("Allow", ALLOW), ("Accept", "application/sdp")],
            )
        elif msg.method in KNOWN_METHODS:
            self._reply(msg, source, 405, headers=[("Allow", ALLOW)])
        else:
            self._reply(msg, source, 501, headers=[("Allow", ALLOW)])

    def _key(self, msg: SipMessage) -> tuple[str, str]:
        return msg.call_id, name_addr(msg.get("From") or "")[1].get("tag", "")

    def _on_invite(self, msg: SipMessage, source: tuple[str, int]) -> None:
        key = self._key(msg)
        to_tag = name_addr(msg.get("To") or "")[1].get("tag")
        call = self.calls.get(key)
        if call is not None:
            if to_tag is None and msg.cseq == call.invite.cseq:
                self.stats["retransmissions"] += 1
                if call.last_response is not None:  # the same answer again (RFC 3261 17.2.1)
                    self._send(call.last_response, self._response_destination(call))
                return
            if to_tag == call.to_tag and call.state == "confirmed":
                self._on_reinvite(call, msg, source)
                return
            self._reply(msg, source, 500, headers=[("Retry-After", "5")])
            return
        if to_tag is not None:
            self._reply(msg, source, 481)
            return
        call = Call(key, msg, source)
        if not self._trusted(source[0]):
            log.info("INVITE from untrusted %s refused", source[0])
            self._reject(call, 403, [("Warning", '399 cellcelly "not a trusted SIP peer"')])
            return
        if uri_user(msg.uri) != self.number:
            self._reject(call, 404)
            return
        if msg.get("Require"):
            self._reject(call, 420, [("Unsupported", msg.get("Require") or "")])
            return
        if sum(1 for c in self.calls.values() if c.state != "done") >= self.max_calls:
            self._reject(call, 486)
            return
        if msg.body:
            content_type = (msg.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type != "application/sdp":
                self._reject(call, 415, [("Accept", "application/sdp")])
                return
            try:
                call.offer = parse_sdp(msg.body)
            except SipError as exc:
                self._reject(call, 488, [("Warning", f'399 cellcelly "{exc}"')])
                return
            if call.offer.payload_type is None:
                self._reject(
                    call, 488, [("Warning", '305 cellcelly "Incompatible media format: PCMU/8000 only"')]
                )
                return
        self.calls[key] = call
        self.stats["invites"] += 1
        call.last_response = self._reply(msg, source, 100)
        self._spawn(self._set_up(call), call)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in network for network in self.trusted)

    def _reject(self, call: Call, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        self.stats[f"rejected_{status}"] += 1
        log.info("call %s rejected: %d", call.key[0], status)
        self.calls[call.key] = call
        self._final(call, status, headers=headers)
        call.state = "done"
        self._forget_later(call)

    def _final(
        self, call: Call, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""
    ) -> None:
        """Send the INVITE's final response and resend it until the ACK comes (or 64*T1)."""
        call.final_status = status
        call.last_response = self._reply(
            call.invite, call.source, status, to_tag=call.to_tag, headers=headers, body=body
        )
        self._spawn(self._retransmit_final(call), call)

    async def _retransmit_final(self, call: Call) -> None:
        interval, waited = self.t1, 0.0
        while waited < 64 * self.t1:
            try:
                await asyncio.wait_for(call.acked.wait(), interval)
                return
            except TimeoutError:
                waited += interval
                if call.last_response is not None:
                    self._send(call.last_response, self._response_destination(call))
                interval = min(interval * 2, self.t2)
        log.info("call %s: no ACK for %d", call.key[0], call.final_status)
        if call.final_status == 200 and call.state != "done":
            await self._hang_up(call)

    def _response_destination(self, call: Call) -> tuple[str, int]:
        via = call.invite.all("Via")[0]
        if "rport" in header_params(via):
            return call.source
        sent_by = via.split(None, 1)[-1].split(";", 1)[0]
        port = sent_by.rsplit(":", 1)[1] if sent_by.count(":") == 1 else ""
        return call.source[0], int(port) if port.isdigit() else 5060

    async def _set_up(self, call: Call) -> None:
        call.msisdn = caller_msisdn(call.invite)
        call.last_response = self._reply(
            call.invite, call.source, 180, to_tag=call.to_tag, headers=[("Contact", self._contact())]
        )
        ringing = asyncio.ensure_future(asyncio.sleep(self.ring_seconds))
        try:
            sentences = await self._sentences(call.msisdn)
            call.audio = await self.audio.ulaw_for(sentences)
            await ringing
        except Exception as exc:  # no audio to play: refuse the call rather than answer silence
            log.error(
                "call %s: no prompt audio: %s", call.key[0], exc, exc_info=not isinstance(exc, SynthesisError)
            )
            ringing.cancel()
            self._final(call, 503, headers=[("Retry-After", "30")])
            call.state = "done"
            self._forget_later(call)
            return
        call.media = await MediaPort.open(self.host)
        pt = call.offer.payload_type if call.offer is not None else None
        call.sender = RtpSender(payload_type=pt if pt is not None else 0)
        direction = "sendonly" if call.offer and call.offer.direction == "recvonly" else "sendrecv"
        call.answer = sdp_answer(
            self.advertise_host, call.media.port, call.sender.payload_type, secrets.randbits(31), direction
        )
        self._final(
            call,
            200,
            headers=[
                ("Contact", self._contact()),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=call.answer,
        )
        self.stats["answered"] += 1
        log.info("call %s from %s answered", call.key[0], masked(call.msisdn))

    async def _sentences(self, msisdn: str | None) -> Sequence[str]:
        if msisdn is None:
            return prompt_sentences(None)
        try:
            summary: BalanceSummary | None = await asyncio.wait_for(self.lookup(msisdn), self.lookup_timeout)
        except Exception:
            log.exception("balance lookup failed for %s", masked(msisdn))
            return SERVICE_UNAVAILABLE
        return prompt_sentences(summary)

    def _contact(self) -> str:
        return f"<sip:{self.number}@{self._hostport()}>"

    def _hostport(self) -> str:
        host = self.advertise_host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def _on_ack(self, msg: SipMessage) -> None:
        call = self.calls.get(self._key(msg))
        if call is None or call.final_status == 0:
            return
        if call.final_status >= 300 or call.acked.is_set():  # ACK of an error or a retransmitted ACK
            call.acked.set()
            return
        if name_addr(msg.get("To") or "")[1].get("tag") != call.to_tag:
            return
        call.acked.set()
        if call.offer is None:  # late offer: the caller's SDP comes with the ACK
            try:
                call.offer = parse_sdp(msg.body)
            except SipError as exc:
                log.info("call %s: unusable SDP in ACK (%s): hanging up", call.key[0], exc)
                self._spawn(self._hang_up(call), call)
                return
        if call.state == "early":
            call.state = "confirmed"
            self._spawn(self._play(call), call)

    def _on_reinvite(self, call: Call, msg: SipMessage, source: tuple[str, int]) -> None:
        """A session refresh or a new address for the caller's media: keep our answer."""
        if msg.body:
            try:
                offer = parse_sdp(msg.body)
            except SipError:
                self._reply(msg, source, 488, to_tag=call.to_tag)
                return
            if offer.payload_type is None:
                self._reply(msg, source, 488, to_tag=call.to_tag)
                return
            call.offer = offer
        self._reply(
            msg,
            source,
            200,
            to_tag=call.to_tag,
            headers=[("Contact", self._contact()), ("Content-Type", "application/sdp")],
            body=call.answer,
        )

    async def _play(self, call: Call) -> None:
        assert call.media is not None and call.sender is not None and call.offer is not None
        sent = await call.media.play(call.audio, (call.offer.address, call.offer.port), call.sender)
        self.stats["rtp_packets"] += sent
        log.info("call %s: played %d packets", call.key[0], sent)
        if call.state == "confirmed":
            await self._hang_up(call)

    async def _hang_up(self, call: Call, wait: float | None = None) -> None:
        """Send BYE and wait for its final response (resent on T1 doubling up to T2, 64*T1 at most)."""
        call.state = "done"
        self._close_media(call)
        bye, destination = self._bye(call)
        branch = bye.branch
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[int] = loop.create_future()
        self._bye_waiters[branch] = answered
        data = bye.to_bytes()
        interval, deadline = self.t1, loop.time() + (wait if wait is not None else 64 * self.t1)
        try:
            while True:
                self._send(data, destination)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.info("call %s: no answer to BYE", call.key[0])
                    break
                try:
                    status = await asyncio.wait_for(asyncio.shield(answered), min(interval, remaining))
                    log.info("call %s: BYE answered %d", call.key[0], status)
                    self.stats["byes_answered"] += 1
                    break
                except TimeoutError:
                    interval = min(interval * 2, self.t2)
        finally:
            self._bye_waiters.pop(branch, None)
            self._forget_later(call)

    def _bye(self, call: Call) -> tuple[SipMessage, tuple[str, int]]:
        invite = call.invite
        contact = invite.get("Contact")
        target = name_addr(contact)[0] if contact else name_addr(invite.get("From") or "")[0]
        routes = invite.all("Record-Route")  # the UAS keeps them in the order received
        next_hop = name_addr(routes[0])[0] if routes else target
        host, port = uri_hostport(next_hop)
        try:
            ipaddress.ip_address(host)
            destination = (host, port)
        except ValueError:  # a name we would have to resolve: the caller's address is the way back
            destination = call.source
        bye = SipMessage(method="BYE", uri=target)
        bye.headers = [
            ("Via", f"SIP/2.0/UDP {self._hostport()};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{invite.get('To')};tag={call.to_tag}"),
            ("To", invite.get("From") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", "1 BYE"),
            *(("Route", route) for route in routes),
            ("User-Agent", SERVER),
        ]
        return bye, destination

    def _on_bye(self, msg: SipMessage, source: tuple[str, int]) -> None:
        call = self.calls.get(self._key(msg))
        if call is None or call.final_status not in (0, 200):
            self._reply(msg, source, 481)
            return
        self._reply(msg, source, 200)
        if call.state != "done":
            log.info("call %s: caller hung up", call.key[0])
            call.state = "done"
            call.acked.set()
            for task in list(call.tasks):
                task.cancel()
            self._close_media(call)
            self._forget_later(call)

    def _on_cancel(self, msg: SipMessage, source: tuple[str, int]) -> None:
        call = self.calls.get(self._key(msg))
        if call is None or call.invite.branch != msg.branch or call.invite.cseq[0] != msg.cseq[0]:
            self._reply(msg, source, 481)
            return
        self._reply(msg, source, 200, to_tag=call.to_tag)
        if call.final_status == 0:  # still ringing: the INVITE ends with 487 (RFC 3261 9.2)
            log.info("call %s cancelled", call.key[0])
            for task in list(call.tasks):
                task.cancel()
            self._close_media(call)
            call.state = "done"
            self._final(call, 487)
            self._forget_later(call)

    # --- responses to our requests ------------------------------------------------------------

    def _on_response(self, msg: SipMessage) -> None:
        waiter = self._bye_waiters.get(msg.branch)
        if waiter is not None and msg.status >= 200 and not waiter.done():
            waiter.set_result(msg.status)

    # --- housekeeping ------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], call: Call | None = None) -> None:
        task = asyncio.ensure_future(coro)
        owner = call.tasks if call is not None else self._tasks
        owner.add(task)
        task.add_done_callback(owner.discard)
        task.add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("IVR task failed", exc_info=task.exception())

    def _close_media(self, call: Call) -> None:
        if call.media is not None:
            call.media.close()
            call.media = None

    def _forget_later(self, call: Call) -> None:
        """Keep a finished call for 64*T1 so retransmissions still get their answer."""
        loop = asyncio.get_running_loop()

        def forget() -> None:
            self._timers.discard(timer)
            if self.calls.get(call.key) is call and call.state == "done" and not call.tasks:
                del self.calls[call.key]
            elif self.calls.get(call.key) is call:
                self._forget_later(call)

        timer = loop.call_later(64 * self.t1, forget)
        self._timers.add(timer)
