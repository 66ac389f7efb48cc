"""The gateway: answers every credit-control request, replays answers to retransmissions, and
re-authorises or aborts sessions when a subscriber's balance or status changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from cellcelly.dgw.ccr_reader import KEPT, KNOWN_IETF, read_ccr
from cellcelly.dgw.gy import GyError, build_cca, parse_ccr
from cellcelly.dgw.ocs_client import OcsClient, OcsUnavailable
from cellcelly.dgw.overload import TICK, Overload
from cellcelly.diameter import doic
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import APP_CREDIT_CONTROL, AVP_M, FLAG_P, FLAG_R, Cmd, Code, Result
from cellcelly.diameter.peer import LocalPeer, PeerConnection, State, error_answer
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, RequestType, ResultCode
from cellcelly.ports.cache import SubscriberCache, SubscriberInfo

log = logging.getLogger(__name__)

RAR_AUTHORIZE_ONLY = 0
# AccountService's change kinds (application/accounts.py, application/changes.py) a gateway acts on:
# money or allowance added (a voucher is a top-up) may end a cut-off; a suspension ends every session
REAUTHORIZE_ON = frozenset({"topup", "package"})
ABORT_ON = frozenset({"suspended"})
# what an overloaded gateway refuses (`dgw/overload.py`): what starts a session or is one event;
# a session under way keeps its updates and terminate, whose usage is money
NEW_SESSIONS = frozenset({RequestType.INITIAL, RequestType.EVENT})


@dataclass
class TrackedSession:
    msisdn: str
    conn: PeerConnection  # the next hop towards the client (a relay, or the client itself)
    client_host: str  # the CCR's Origin-Host/Realm: where RAR and ASR are addressed
    client_realm: str
    cut_off: bool = False  # the last answer ended its quota (4012 or final units)

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self, msisdn: str, conn: PeerConnection, client_host: str, client_realm: str, cut_off: bool = False
    ) -> None:
        self.msisdn = msisdn
        self.conn = conn
        self.client_host = client_host
        self.client_realm = client_realm
        self.cut_off = cut_off


@dataclass
class GatewayStats:
    ccr: int = 0
    replayed: int = 0
    joined_in_flight: int = 0
    ocs_unavailable: int = 0
    rejected: int = 0
    rar_sent: int = 0
    asr_sent: int = 0
    cache_failed: int = 0  # lookups that failed: charged through the OCS anyway
    too_busy: int = 0  # new sessions refused with 3004 while overloaded
    results: dict[int, int] = field(default_factory=dict)


# what the gateway answers a request with: at once, or a future the peer answers from when done
Answering = Message | asyncio.Future[bytes] | asyncio.Future[Message]


class _InFlight:
    """A CCR with the OCS: what its answer is made from, and the future the peer answers from."""

    __slots__ = ("conn", "msg", "req", "key", "fut", "started")

    def __init__(
        self,
        conn: PeerConnection,
        msg: Message,
        req: ChargeRequest,
        key: tuple[str, int],
        fut: asyncio.Future[bytes],
        started: float,
    ) -> None:
        self.conn = conn
        self.msg = msg
        self.req = req
        self.key = key
        self.fut = fut
        self.started = started


class Gateway:
    def __init__(
        self,
        local: LocalPeer,
        ocs: OcsClient,
        cache: SubscriberCache | None = None,
        *,
        answer_retention: float = 60.0,
        max_answers: int = 200_000,
        overload_delay: float = 0.0,
    ) -> None:
        self.local = local
        self.ocs = ocs
        self.cache = cache
        self.overload = Overload(overload_delay)
        # the last DOIC report and its OC-OLR, built once for every answer that carries it
        self._olr: tuple[doic.OverloadReport, Avp] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self.retention = answer_retention
        self.max_answers = max_answers
        # each answer as it went out, for a retransmission: bytes, not its AVPs, since ~10 objects an
        # answer kept for a minute were millions for the collector to walk, and its pauses were the
        # DGW's p99 (`make bench`'s noop row)
        self._answers: OrderedDict[tuple[str, int], tuple[float, bytes]] = OrderedDict()
        self._in_flight: dict[tuple[str, int], asyncio.Future[bytes]] = {}
        self.sessions: dict[str, TrackedSession] = {}
        # every DGW hears of every subscriber's changes: look their sessions up, do not scan them all
        self._sessions_of: dict[str, set[str]] = {}
        self._reactions: set[asyncio.Task[list[tuple[str, int | None]]]] = set()
        self.stats = GatewayStats()

    # --- the Diameter handler ---------------------------------------------------------------------

    def __call__(self, conn: PeerConnection, msg: Message) -> Answering:
        if msg.code != Cmd.CREDIT_CONTROL:
            return error_answer(msg, self.local, Result.COMMAND_UNSUPPORTED, f"command {msg.code}")
        self.stats.ccr += 1
        unknown = _unsupported_mandatory(msg.avps)
        if unknown is not None:
            return self._reject(
                msg, GyError(Result.AVP_UNSUPPORTED, f"{unknown.name} not supported", unknown)
            )
        try:
            req, _ = parse_ccr(msg)
        except GyError as exc:
            return self._reject(msg, exc)
        except Exception as exc:  # noqa: BLE001 - e.g. an AVP value the codec could not read
            failed = getattr(exc, "failed", None)
            return self._reject(msg, GyError(Result.INVALID_AVP_VALUE, str(exc), failed))
        msg.keep_only(KEPT)  # read: only what its answers are made from lives on
        return self._admit(conn, msg, req)

    def read(self, conn: PeerConnection, frame: bytes) -> tuple[Message, Answering] | None:
        """The peer's hot path (`PeerConnection(reader=)`): a CCR read straight from its bytes
        (`ccr_reader`) and answered as `__call__` answers it; None for what that reader does not
        read, which the peer then decodes and hands to `__call__`."""
        if APP_CREDIT_CONTROL not in conn.local.auth_applications:
            return None
        try:
            read = read_ccr(frame)
        except Exception:  # noqa: BLE001 - a defect of the reader: the full path answers
            log.exception("CCR reader failed; decoding it")
            return None
        if read is None:
            return None
        msg, req = read
        self.stats.ccr += 1
        return msg, self._admit(conn, msg, req)

    def _admit(self, conn: PeerConnection, msg: Message, req: ChargeRequest) -> Answering:
        """A CCR read: replayed, joined, refused while overloaded or unknown, or sent to the OCS."""
        key = (req.session_id, req.request_number)
        stored = self._answers.get(key)
        if stored is not None and stored[0] > time.monotonic():
            self.stats.replayed += 1
            return self._restamp(msg, stored[1])
        flight = self._in_flight.get(key)
        if flight is not None:  # a retransmission while the original is still with the OCS
            self.stats.joined_in_flight += 1
            return asyncio.ensure_future(self._join(msg, flight))
        now = time.monotonic()
        if req.request_type in NEW_SESSIONS and not self.overload.admits(now):
            self.stats.too_busy += 1
            # not stored: a retry once the queue is gone is charged as any new request
            busy = error_answer(msg, self.local, Result.TOO_BUSY, "overloaded: no new sessions for now")
            return self._told(msg, busy, now)
        miss = None
        if self.cache is not None and req.msisdn:
            # a hit is answered here, without a coroutine; a miss is awaited in `_charge`
            known = self.cache.lookup_nowait(req.msisdn)
            if known is None:
                return self._unknown(msg, req)
            if isinstance(known, asyncio.Future):
                miss = known
        loop = conn.loop
        ccr = _InFlight(conn, msg, req, key, loop.create_future(), now)
        self._in_flight[key] = ccr.fut
        if miss is None:
            # sent at once, answered from a callback: no task and no coroutine, a few µs a CCR
            if self.ocs.charge_soon(req, functools.partial(self._answered, ccr)):
                return ccr.fut
        # the loop's own create_task: asyncio.ensure_future is Python, a few µs a CCR
        return loop.create_task(self._charge(ccr, miss))

    @property
    def in_flight(self) -> int:
        """CCRs sent to the OCS and not answered yet."""
        return len(self._in_flight)

    def _unknown(self, msg: Message, req: ChargeRequest) -> Message:
        """5030 without a trip to the OCS: the cache says there is no such subscriber."""
        answer = ChargeAnswer(req.session_id, req.request_type, req.request_number, ResultCode.USER_UNKNOWN)
        return self._told(msg, build_cca(msg, req, answer, self.local), time.monotonic())

    def _told(self, request: Message, answer: Message, now: float) -> Message:
        """The answer, with DOIC's AVPs when the request's sender understands them (RFC 7683): the
        algorithm chosen, and the overload report if there is one."""
        if doic.understands(request):
            answer.avps.append(doic.supported())
            report = self.overload.report(now)
            if report is not None:
                if self._olr is None or report != self._olr[0]:
                    self._olr = (report, doic.olr(report))
                answer.avps.append(self._olr[1])
        return answer

    def _reject(self, msg: Message, exc: GyError) -> Message:
        self.stats.rejected += 1
        return error_answer(msg, self.local, exc.result, str(exc), exc.failed)

    @staticmethod
    def _restamp(request: Message, sent: bytes) -> Message:
        """The answer `sent` again, to this request: its identifiers and Proxy-Info (rare: only a
        retransmission pays for decoding it)."""
        first = decode(sent)
        answer = request.answer(first.avps)
        answer.flags = first.flags
        return answer

    async def _join(self, msg: Message, flight: asyncio.Future[bytes]) -> Message:
        return self._restamp(msg, await asyncio.shield(flight))

    async def _charge(self, ccr: _InFlight, known: asyncio.Future[SubscriberInfo | None] | None) -> bytes:
        fut = ccr.fut
        try:
            if known is not None and await self._is_unknown(ccr.req.msisdn, known):
                sent = self._unknown(ccr.msg, ccr.req).encode()
                fut.set_result(sent)
                return sent
            try:
                answer = await self.ocs.charge(ccr.req)
            except OcsUnavailable as exc:
                return self._settle(ccr, None, exc)
            return self._settle(ccr, answer, None)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved here; joiners re-raise it themselves
            raise
        finally:
            self._in_flight.pop(ccr.key, None)

    def _answered(self, ccr: _InFlight, answer: ChargeAnswer | None, exc: BaseException | None) -> None:
        """`ocs.charge_soon`'s answer: the future the peer answers from settled as `_charge`'s task
        would have ended."""
        fut = ccr.fut
        try:
            if exc is None or isinstance(exc, OcsUnavailable):
                self._settle(ccr, answer, exc)
            elif isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)  # the peer answers it (5012) from `fut`
        except Exception as failed:  # noqa: BLE001 - the answer could not be made: the same
            if not fut.done():
                fut.set_exception(failed)
        finally:
            self._in_flight.pop(ccr.key, None)

    def _settle(
        self, ccr: _InFlight, answer: ChargeAnswer | None, unavailable: OcsUnavailable | None
    ) -> bytes:
        """The CCA of the OCS's answer, or 3002 when no OCS answered: encoded, kept for a
        retransmission (not a 3002: a retry may find the OCS back, and the OCS keeps charging
        idempotent), the in-flight future's result."""
        msg, req = ccr.msg, ccr.req
        if answer is None:
            self.stats.ocs_unavailable += 1
            reply = error_answer(msg, self.local, Result.UNABLE_TO_DELIVER, f"OCS unavailable: {unavailable}")
            sent = self._told(msg, reply, time.monotonic()).encode()
            ccr.fut.set_result(sent)
            return sent
        now = time.monotonic()
        self.overload.answered(now - ccr.started, now)
        sent = self._told(msg, build_cca(msg, req, answer, self.local), now).encode()
        self._remember(ccr.key, sent, now)
        host, realm = msg.find(Code.ORIGIN_HOST), msg.find(Code.ORIGIN_REALM)
        origin = (
            host.as_str() if host else ccr.conn.remote_host,
            realm.as_str() if realm else ccr.conn.remote_realm,
        )
        self._track(ccr.conn, req, answer, origin)
        code = int(answer.result_code)
        self.stats.results[code] = self.stats.results.get(code, 0) + 1
        ccr.fut.set_result(sent)
        return sent

    async def _is_unknown(self, msisdn: str, known: asyncio.Future[SubscriberInfo | None]) -> bool:
        """The cache's miss, awaited (shielded: it is shared with other requests for `msisdn`).
        A cache or store that fails is no answer: the OCS decides, as it would without a cache."""
        try:
            return await asyncio.shield(known) is None
        except Exception as exc:  # noqa: BLE001 - any back-end failure behind the cache
            self.stats.cache_failed += 1
            log.warning(
                "subscriber lookup failed, charging anyway", extra={"msisdn": msisdn, "error": str(exc)}
            )
            return False

    def _remember(self, key: tuple[str, int], sent: bytes, now: float) -> None:
        answers = self._answers
        answers[key] = (now + self.retention, sent)
        while len(answers) > self.max_answers:
            answers.popitem(last=False)
        # drop what has aged out at the old end
        while answers:
            oldest = next(iter(answers.values()))
            if oldest[0] > now:
                break
            answers.popitem(last=False)

    def _track(
        self, conn: PeerConnection, req: ChargeRequest, answer: ChargeAnswer, origin: tuple[str, str]
    ) -> None:
        sid = req.session_id
        if req.request_type in (RequestType.TERMINATE, RequestType.EVENT) or (
            req.request_type is RequestType.INITIAL and answer.result_code is not ResultCode.SUCCESS
        ):
            self._forget(sid)
            return
        cut_off = any(
            r.final_unit or r.result_code is ResultCode.CREDIT_LIMIT_REACHED for r in answer.services
        )
        tracked = self.sessions.get(sid)
        if tracked is None:
            if not req.msisdn:
                return
            tracked = self.sessions[sid] = TrackedSession(req.msisdn, conn, *origin)
            self._sessions_of.setdefault(req.msisdn, set()).add(sid)
        tracked.conn = conn
        tracked.cut_off = cut_off

    def _forget(self, sid: str) -> None:
        tracked = self.sessions.pop(sid, None)
        if tracked is None:
            return
        sids = self._sessions_of.get(tracked.msisdn)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._sessions_of[tracked.msisdn]

    def _live(self, msisdn: str) -> list[tuple[str, TrackedSession]]:
        """The sessions of `msisdn` this gateway holds whose peer is still connected."""
        found = ((sid, self.sessions[sid]) for sid in self._sessions_of.get(msisdn, ()))
        return [(sid, t) for sid, t in found if t.conn.state is State.OPEN]

    # --- server-initiated requests -----------------------------------------------------------------

    def _server_request(self, code: int, sid: str, tracked: TrackedSession, extra: list[Avp]) -> Message:
        return Message(
            code,
            FLAG_R | FLAG_P,
            APP_CREDIT_CONTROL,
            avps=[
                Avp.utf8(Code.SESSION_ID, sid),
                *self.local.identity(),
                Avp.utf8(Code.DESTINATION_REALM, tracked.client_realm),
                Avp.utf8(Code.DESTINATION_HOST, tracked.client_host),
                Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
                *extra,
            ],
        )

    async def reauthorize(self, msisdn: str, timeout: float = 5.0) -> list[tuple[str, int | None]]:
        """RAR to the peer of every session of `msisdn` that was cut off (after a top-up or a package).

        Returns (session id, RAA Result-Code or None when the peer did not answer)."""
        sent = []
        for sid, tracked in self._live(msisdn):
            if not tracked.cut_off:
                continue
            rar = self._server_request(
                Cmd.RE_AUTH, sid, tracked, [Avp.u32(Code.RE_AUTH_REQUEST_TYPE, RAR_AUTHORIZE_ONLY)]
            )
            self.stats.rar_sent += 1
            sent.append((sid, tracked.conn.request(rar, timeout)))
        return await self._collect(sent)

    async def abort(self, msisdn: str, timeout: float = 5.0) -> list[tuple[str, int | None]]:
        """ASR for every live session of `msisdn` (the subscriber was suspended)."""
        sent = []
        for sid, tracked in self._live(msisdn):
            asr = self._server_request(Cmd.ABORT_SESSION, sid, tracked, [])
            self.stats.asr_sent += 1
            sent.append((sid, tracked.conn.request(asr, timeout)))
        return await self._collect(sent)

    def account_changed(self, kind: str, msisdn: str) -> asyncio.Task[list[tuple[str, int | None]]] | None:
        """React to a committed change of a subscriber, whichever process made it: forget it in the
        cache, RAR its cut-off sessions after a top-up or a package, ASR all of them after a
        suspension. The requests go out in the background (a peer may take seconds to answer);
        the task, or None when there is nothing to send. Acting twice on one change is harmless:
        a second RAR only makes the client ask again, and a session the ASR ended is gone."""
        if self.cache is not None:
            self.cache.invalidate(msisdn)
        if msisdn not in self._sessions_of:
            return None
        if kind in REAUTHORIZE_ON:
            task = asyncio.ensure_future(self.reauthorize(msisdn))
        elif kind in ABORT_ON:
            task = asyncio.ensure_future(self.abort(msisdn))
        else:
            return None
        self._reactions.add(task)
        task.add_done_callback(self._reactions.discard)
        return task

    def watch(self) -> None:
        """Look at the loop's lateness every `TICK` for the overload rule, while a server listens."""
        if self.overload.delay and self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(TICK, self._tick, time.monotonic() + TICK)

    def unwatch(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self, due: float) -> None:
        now = time.monotonic()
        self.overload.lagged(max(0.0, now - due))
        self._ticker = asyncio.get_running_loop().call_later(TICK, self._tick, now + TICK)

    async def close(self) -> None:
        """Stop watching the loop; cancel the RARs and ASRs still waiting for an answer."""
        self.unwatch()
        reactions = list(self._reactions)
        for task in reactions:
            task.cancel()
        await asyncio.gather(*reactions, return_exceptions=True)

    @staticmethod
    async def _collect(sent: list[tuple[str, Coroutine[Any, Any, Message]]]) -> list[tuple[str, int | None]]:
        results: list[tuple[str, int | None]] = []
        answers = await asyncio.gather(*(a for _, a in sent), return_exceptions=True)
        for (sid, _), answer in zip(sent, answers, strict=True):
            results.append((sid, answer.result_code if isinstance(answer, Message) else None))
        return results


def _unsupported_mandatory(avps: list[Avp]) -> Avp | None:
    """The first IETF AVP with the M bit that we do not know (RFC 6733 §7.1.5: 5001), in the order
    `Message.walk` gives (a recursion over the lists rather than its generator: every CCR runs this).

    3GPP AVPs are exempt: TS 32.299's Service-Information has hundreds that a packet gateway or an
    IMS node may send, most of no concern to rating, and refusing them would refuse real traffic.
    """
    for avp in avps:
        if avp.flags & AVP_M and avp.vendor == 0 and avp.code not in KNOWN_IETF:
            return avp
        children = avp.children
        if children:
            found = _unsupported_mandatory(children)
            if found is not None:
                return found
    return None
