"""The charging state machine (RFC 8506 session and event charging, 3GPP TS 32.299 semantics).

`charge(account, catalogue, request, now)` is a pure function: it never changes `account`; it
returns the new account, the sessions it touched or forgot, the answer and the usage events.
The balance store applies all of that in one atomic step per subscriber, and stores the answer
with the session so a retransmission (same session id and request number) gets it back and
changes nothing.

Order of payment: package buckets of the rule's kind first (the one expiring first first), then
the wallet at the rule's price. Wallet usage is rated on the cumulative units of the session's
rating group, so the total debited equals the rated value of the total usage however it is
split over updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from cellcelly.domain.account import Account, Bucket, RatedService, Reservation, Session, Status
from cellcelly.domain.catalogue import HOME_LOCATION, Catalogue, ChargingPolicy
from cellcelly.domain.limits import (
    MAX_RATING_GROUP,
    MAX_REQUEST_NUMBER,
    MAX_SESSION_ID,
    MAX_SESSION_UNITS,
    MAX_UNITS,
)
from cellcelly.domain.units import Service


class RequestType(IntEnum):
    """CC-Request-Type values of RFC 8506."""

    INITIAL = 1
    UPDATE = 2
    TERMINATE = 3
    EVENT = 4


# the request types by value, for the readers of a CCR and of the wire: calling an Enum costs ~1 µs
REQUEST_TYPES: Final = {t.value: t for t in RequestType}


class ResultCode(IntEnum):
    SUCCESS = 2001
    END_USER_SERVICE_DENIED = 4010
    CREDIT_LIMIT_REACHED = 4012
    UNKNOWN_SESSION_ID = 5002
    UNABLE_TO_COMPLY = 5012
    USER_UNKNOWN = 5030
    RATING_FAILED = 5031


@dataclass(frozen=True, slots=True)
class ServiceUsage:
    """One Multiple-Services-Credit-Control of a request."""

    rating_group: int
    service: Service
    requested: int | None = None  # None: the policy's default quota; 0: report only
    used: int = 0
    destination: str = ""

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        rating_group: int,
        service: Service,
        requested: int | None = None,
        used: int = 0,
        destination: str = "",
    ) -> None:
        object.__setattr__(self, "rating_group", rating_group)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "requested", requested)
        object.__setattr__(self, "used", used)
        object.__setattr__(self, "destination", destination)


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    session_id: str
    request_type: RequestType
    request_number: int
    msisdn: str
    services: tuple[ServiceUsage, ...] = ()
    location: str = HOME_LOCATION

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        session_id: str,
        request_type: RequestType,
        request_number: int,
        msisdn: str,
        services: tuple[ServiceUsage, ...] = (),
        location: str = HOME_LOCATION,
    ) -> None:
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "request_type", request_type)
        object.__setattr__(self, "request_number", request_number)
        object.__setattr__(self, "msisdn", msisdn)
        object.__setattr__(self, "services", services)
        object.__setattr__(self, "location", location)


@dataclass(slots=True)
class ServiceResult:
    rating_group: int
    result_code: ResultCode
    granted: int = 0
    validity_time: int | None = None
    final_unit: bool = False  # Final-Unit-Indication: no more quota after this
    # with final_unit: Final-Unit-Action REDIRECT to this (top-up) page; "" TERMINATE
    redirect_url: str = ""
    quota_holding_time: int | None = None  # seconds idle after which the client gives the quota back

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        rating_group: int,
        result_code: ResultCode,
        granted: int = 0,
        validity_time: int | None = None,
        final_unit: bool = False,
        redirect_url: str = "",
        quota_holding_time: int | None = None,
    ) -> None:
        self.rating_group = rating_group
        self.result_code = result_code
        self.granted = granted
        self.validity_time = validity_time
        self.final_unit = final_unit
        self.redirect_url = redirect_url
        self.quota_holding_time = quota_holding_time


@dataclass(slots=True)
class ChargeAnswer:
    session_id: str
    request_type: RequestType
    request_number: int
    result_code: ResultCode
    services: tuple[ServiceResult, ...] = ()

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        session_id: str,
        request_type: RequestType,
        request_number: int,
        result_code: ResultCode,
        services: tuple[ServiceResult, ...] = (),
    ) -> None:
        self.session_id = session_id
        self.request_type = request_type
        self.request_number = request_number
        self.result_code = result_code
        self.services = services


# An answer as its session keeps it for retransmissions: one flat tuple of numbers and strings,
# which the cyclic garbage collector stops tracking the first time it meets it (a nested tuple only
# level by level, over several collections). A ChargeAnswer and its ServiceResults stay tracked:
# kept for every session for the answer retention (300 s), they were most of a store's objects,
# and the full collections walking them were the OCS's p99 (`make bench`'s e2e rows). Layout: session
# id, request type, request number, result code, then `KEPT_RESULT_FIELDS` values a service result.
KeptAnswer = tuple[Any, ...]
KEPT_HEAD: Final = 4
KEPT_RESULT_FIELDS: Final = 7  # rating group, result code, granted, validity, final unit, redirect, holding
KEPT_ANSWERS: Final = 4  # a session's last answers kept for retransmissions

# the result codes by value, looked up per answer: calling an Enum costs ~1 µs, several a CCR
RESULT_CODES: Final = {c.value: c for c in ResultCode}
# and each code's value as one shared int: `int(code)` makes a new one (28 bytes) every time, and
# a session keeps up to four answers for the answer retention, 750,000 sessions at 2,500 a second.
# `object`, not `int`: compiled, an int read from the dict would be unboxed and boxed again, new
_CODE_VALUES: Final[dict[ResultCode, object]] = {c: c.value for c in ResultCode}


def kept_answer(a: ChargeAnswer, session_id: str | None = None) -> KeptAnswer:
    """`session_id`: the session's own id, equal to the answer's: kept instead of the request's
    copy, each request of a session decoding its own (a string of ~80 bytes an answer kept)."""
    codes = _CODE_VALUES
    sid = a.session_id if session_id is None else session_id
    kept: list[Any] = [sid, int(a.request_type), a.request_number, codes[a.result_code]]
    for r in a.services:
        kept += (
            r.rating_group,
            codes[r.result_code],
            r.granted,
            r.validity_time,
            r.final_unit,
            r.redirect_url,
            r.quota_holding_time,
        )
    return tuple(kept)


def kept_answer_of(session: Session, request_number: int) -> KeptAnswer | None:
    """The answer the session keeps for that request, if it still keeps one."""
    kept: KeptAnswer
    for kept in session.answers:
        if kept[2] == request_number:
            return kept
    return None


def answer_of(kept: KeptAnswer) -> ChargeAnswer:
    """The answer `kept_answer` holds. KeyError for a request type or result code it does not know."""
    codes = RESULT_CODES
    results = tuple(ServiceResult(r[0], codes[r[1]], *r[2:]) for r in kept_results(kept))
    return ChargeAnswer(kept[0], REQUEST_TYPES[kept[1]], kept[2], codes[kept[3]], results)


def kept_results(kept: KeptAnswer) -> list[tuple[Any, ...]]:
    """Each service result's fields, in order."""
    return [kept[i : i + KEPT_RESULT_FIELDS] for i in range(KEPT_HEAD, len(kept), KEPT_RESULT_FIELDS)]


@dataclass(slots=True)
class UsageEvent:
    """One debit, written to the outbox in the same atomic step as the debit itself."""

    event_id: str  # "<session id>#<request number>#<rating group>": unique, and stable on retry
    msisdn: str
    session_id: str
    request_number: int
    rating_group: int
    service: Service
    rule_id: str
    units: int  # reported usage
    bucket_units: int  # of which taken from package buckets
    wallet_units: int  # of which paid from the wallet
    uncharged_units: int  # reported beyond what was granted and could not be paid
    money: int  # kuruş debited from the wallet
    wallet_after: int
    occurred_at: int
    buckets: tuple[tuple[str, int], ...] = ()  # (bucket id, units) consumed
    revision: int = 0  # the account's revision before the commit: orders one subscriber's events
    # what a CDR and a rerating need beside the rule: where it went, from where, under which prices
    destination: str = ""
    location: str = ""
    catalogue_version: str = ""

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        event_id: str,
        msisdn: str,
        session_id: str,
        request_number: int,
        rating_group: int,
        service: Service,
        rule_id: str,
        units: int,
        bucket_units: int,
        wallet_units: int,
        uncharged_units: int,
        money: int,
        wallet_after: int,
        occurred_at: int,
        buckets: tuple[tuple[str, int], ...] = (),
        revision: int = 0,
        destination: str = "",
        location: str = "",
        catalogue_version: str = "",
    ) -> None:
        self.event_id = event_id
        self.msisdn = msisdn
        self.session_id = session_id
        self.request_number = request_number
        self.rating_group = rating_group
        self.service = service
        self.rule_id = rule_id
        self.units = units
        self.bucket_units = bucket_units
        self.wallet_units = wallet_units
        self.uncharged_units = uncharged_units
        self.money = money
        self.wallet_after = wallet_after
        self.occurred_at = occurred_at
        self.buckets = buckets
        self.revision = revision
        self.destination = destination
        self.location = location
        self.catalogue_version = catalogue_version


@dataclass(slots=True)
class NotificationEvent:
    """Something the subscriber should be told, decided in the same step as the debit that caused it.

    The id names the fact itself (this bucket passed 80%), so however often it is delivered the
    subscriber is told once.
    """

    event_id: str
    msisdn: str
    # "bucket-<percent>" (the catalogue's thresholds) | "wallet-low" | "package-expiring" |
    # "package-renewing" (the same, renewal chosen) | "package-renewed" | "package-renewal-failed"
    kind: str
    occurred_at: int
    service: str = ""
    package: str = ""
    bucket_id: str = ""
    remaining: int = 0  # units left in the bucket
    total: int = 0
    wallet: int = 0  # kuruş, after the debit
    valid_until: int = 0  # package-*: when the package (or its renewed period) ends, epoch seconds

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        event_id: str,
        msisdn: str,
        kind: str,
        occurred_at: int,
        service: str = "",
        package: str = "",
        bucket_id: str = "",
        remaining: int = 0,
        total: int = 0,
        wallet: int = 0,
        valid_until: int = 0,
    ) -> None:
        self.event_id = event_id
        self.msisdn = msisdn
        self.kind = kind
        self.occurred_at = occurred_at
        self.service = service
        self.package = package
        self.bucket_id = bucket_id
        self.remaining = remaining
        self.total = total
        self.wallet = wallet
        self.valid_until = valid_until


@dataclass(slots=True)
class Outcome:
    """What one charging operation produces; the store commits it atomically or not at all."""

    answer: ChargeAnswer
    account: Account | None  # the new account, None when nothing changed
    changed_sessions: set[str] = field(default_factory=set)
    removed_sessions: set[str] = field(default_factory=set)
    events: list[UsageEvent] = field(default_factory=list)
    notices: list[NotificationEvent] = field(default_factory=list)  # for the outbox too, after the usage

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        answer: ChargeAnswer,
        account: Account | None,
        changed_sessions: set[str] | None = None,
        removed_sessions: set[str] | None = None,
        events: list[UsageEvent] | None = None,
        notices: list[NotificationEvent] | None = None,
    ) -> None:
        self.answer = answer
        self.account = account
        self.changed_sessions = set() if changed_sessions is None else changed_sessions
        self.removed_sessions = set() if removed_sessions is None else removed_sessions
        self.events = [] if events is None else events
        self.notices = [] if notices is None else notices


def _answer(req: ChargeRequest, code: ResultCode, services: tuple[ServiceResult, ...] = ()) -> ChargeAnswer:
    return ChargeAnswer(req.session_id, req.request_type, req.request_number, code, services)


def charge(account: Account | None, catalogue: Catalogue, req: ChargeRequest, now: int) -> Outcome:
    """Apply one CCR to a subscriber's account."""
    if not _fits(req):
        # the edges refuse these with the field at fault; this keeps any other path from storing
        # what the system of record cannot hold
        return Outcome(_answer(req, ResultCode.UNABLE_TO_COMPLY), None)
    if account is None:
        return Outcome(_answer(req, ResultCode.USER_UNKNOWN), None)
    known = account.sessions.get(req.session_id)
    if known is not None:
        stored = kept_answer_of(known, req.request_number)
        if stored is not None:
            return Outcome(answer_of(stored), None)  # a retransmission: the same answer, nothing changes
        if req.request_number <= known.last_request or known.finished_at is not None:
            return Outcome(_answer(req, ResultCode.UNABLE_TO_COMPLY), None)
        if not _session_total_fits(known, req):
            return Outcome(_answer(req, ResultCode.UNABLE_TO_COMPLY), None)
    if req.request_type in (RequestType.UPDATE, RequestType.TERMINATE) and known is None:
        return Outcome(_answer(req, ResultCode.UNKNOWN_SESSION_ID), None)
    if req.request_type in (RequestType.INITIAL, RequestType.EVENT) and known is not None:
        return Outcome(_answer(req, ResultCode.UNABLE_TO_COMPLY), None)
    if len({u.rating_group for u in req.services}) != len(req.services):
        # one Multiple-Services-Credit-Control per rating group; a repeat has no meaning to charge
        return Outcome(_answer(req, ResultCode.UNABLE_TO_COMPLY), None)

    tx = _Transaction(account.copy(), catalogue, now)
    tx.swept = tx.sweep()
    if req.session_id in tx.removed:  # idle past the timeout: forgotten just now
        return tx.finish(_answer(req, ResultCode.UNKNOWN_SESSION_ID), req)
    if req.request_type is RequestType.EVENT:
        answer = tx.event(req)
    else:
        answer = tx.session_request(req)
    return tx.finish(answer, req)


def _fits(req: ChargeRequest) -> bool:
    """Within `domain/limits.py`: what the system of record can hold (spelled out, not through the
    helpers there: this runs on every request, and the calls cost more than the comparisons)."""
    if not (0 < len(req.session_id) <= MAX_SESSION_ID and 0 <= req.request_number <= MAX_REQUEST_NUMBER):
        return False
    for u in req.services:
        if not (0 <= u.rating_group <= MAX_RATING_GROUP and 0 <= u.used <= MAX_UNITS):
            return False
        if u.requested is not None and not 0 <= u.requested <= MAX_UNITS:
            return False
    return True


def _session_total_fits(session: Session, req: ChargeRequest) -> bool:
    """A rating group's total use stays within MAX_SESSION_UNITS (kept by the balance store)."""
    for u in req.services:
        rs = session.services.get(u.rating_group)
        if rs is not None and rs.used + u.used > MAX_SESSION_UNITS:
            return False
    return True


class _Transaction:
    """The working state of one charging operation on a private copy of the account."""

    def __init__(self, account: Account, catalogue: Catalogue, now: int) -> None:
        self.acc = account
        self.catalogue = catalogue
        self.policy: ChargingPolicy = catalogue.policy
        self.now = now
        self.changed: set[str] = set()
        self.removed: set[str] = set()
        self.events: list[UsageEvent] = []
        self.notices: list[NotificationEvent] = []
        self.swept = False
        self.copied_buckets: set[str] = set()

    # --- housekeeping ---------------------------------------------------------------------------

    def sweep(self) -> bool:
        """Release expired reservations and forget sessions whose answers are no longer needed."""
        acc, now = self.acc, self.now
        if now < acc.next_sweep:
            return False
        for sid in acc.sessions.forget_ended_before(now - self.policy.answer_retention):
            self.removed.add(sid)
            self.changed.discard(sid)
        for sid, session in list(acc.sessions.live.items()):  # a finished session holds nothing
            expired = [
                rg
                for rg, rs in session.services.items()
                if rs.reservation and rs.reservation.expires_at <= now
            ]
            if expired:
                session = self._writable(sid)
                for rg in expired:
                    self._release(session.services[rg])
            if not any(rs.reservation for rs in session.services.values()) and (
                now >= session.updated_at + self.policy.idle_session_timeout
            ):
                self._forget(sid)
        for bid, bucket in list(acc.buckets.items()):
            if bucket.valid_until <= now and not acc.held_units.get(bid):
                del acc.buckets[bid]  # expired allowances are history, kept in the system of record
        return True

    def _forget(self, sid: str) -> None:
        del self.acc.sessions[sid]
        self.removed.add(sid)
        self.changed.discard(sid)

    def _writable_bucket(self, bid: str) -> Bucket:
        """The bucket, copied once per operation before it is changed."""
        if bid not in self.copied_buckets:
            self.acc.buckets[bid] = self.acc.buckets[bid].copy()
            self.copied_buckets.add(bid)
        return self.acc.buckets[bid]

    def _writable(self, sid: str) -> Session:
        """The session, copied once per operation before it is changed."""
        if sid not in self.changed:
            self.acc.sessions[sid] = self.acc.sessions[sid].copy()
            self.changed.add(sid)
        return self.acc.sessions[sid]

    # --- reservations -----------------------------------------------------------------------------

    def _release(self, rs: RatedService) -> Reservation | None:
        res = rs.reservation
        if res is None:
            return None
        acc = self.acc
        for bid, units in res.bucket_units.items():
            left = acc.held_units[bid] - units
            if left:
                acc.held_units[bid] = left
            else:
                del acc.held_units[bid]
        acc.held_money -= res.wallet_money
        rs.reservation = None
        return res

    def _reserve(self, rs: RatedService, wanted: int) -> tuple[int, bool]:
        """Hold up to `wanted` units; returns (granted, final) where final means nothing is left after."""
        acc, now = self.acc, self.now
        held: dict[str, int] = {}
        need = wanted
        more_left = False
        if rs.bucket is not None:
            for bucket in acc.usable_buckets(rs.bucket, now):
                free = acc.available_units(bucket, now)
                take = min(free, need)
                if take > 0:
                    held[bucket.id] = take
                    need -= take
                if free > take:
                    more_left = True
        wallet_units = money = 0
        if need > 0 or not more_left:
            if rs.price == 0:
                wallet_units, more_left = need, True
            else:
                affordable = rs.affordable(acc.available_money())
                wallet_units = min(need, affordable)
                money = rs.cost(rs.wallet_units + wallet_units) - rs.cost(rs.wallet_units)
                more_left = more_left or affordable > wallet_units
        granted = sum(held.values()) + wallet_units
        if granted == 0:
            return 0, True
        for bid, units in held.items():
            acc.held_units[bid] = acc.held_units.get(bid, 0) + units
        acc.held_money += money
        expires = now + self.policy.validity_time + self.policy.grace
        rs.reservation = Reservation(held, wallet_units, money, expires)
        return granted, not more_left

    # --- debits -------------------------------------------------------------------------------

    def _debit(self, session: Session, req: ChargeRequest, rg: int, rs: RatedService, used: int) -> None:
        """Take `used` units: from what was held first, then from what is free; never below zero."""
        acc, now = self.acc, self.now
        held = self._release(rs)
        need = used
        consumed: list[tuple[str, int]] = []

        def take_from(bucket: Bucket, limit: int) -> None:
            nonlocal need
            take = min(limit, need)
            if take > 0:
                bucket = self._writable_bucket(bucket.id)
                bucket.remaining -= take
                consumed.append((bucket.id, take))
                need -= take

        if held is not None:  # what was granted is honoured even if its bucket has since expired
            for bid, units in held.bucket_units.items():
                bucket = acc.buckets.get(bid)
                if bucket is not None:
                    take_from(bucket, min(units, bucket.remaining - acc.held_units.get(bid, 0)))
        if rs.bucket is not None and need > 0:
            for bucket in acc.usable_buckets(rs.bucket, now):
                take_from(bucket, acc.available_units(bucket, now))
        wallet_units = 0
        if need > 0:
            if rs.price == 0:
                wallet_units = need
            else:
                wallet_units = min(need, rs.affordable(acc.available_money()))
            need -= wallet_units
        money = rs.cost(rs.wallet_units + wallet_units) - rs.cost(rs.wallet_units)
        wallet_before = acc.wallet
        acc.wallet -= money
        rs.wallet_units += wallet_units
        rs.money += money
        rs.used += used
        bucket_units = sum(u for _, u in consumed)
        self.events.append(
            UsageEvent(
                event_id=f"{session.id}#{req.request_number}#{rg}",
                msisdn=acc.msisdn,
                session_id=session.id,
                request_number=req.request_number,
                rating_group=rg,
                service=rs.service,
                rule_id=rs.rule_id,
                units=used,
                bucket_units=bucket_units,
                wallet_units=wallet_units,
                uncharged_units=need,
                money=money,
                wallet_after=acc.wallet,
                occurred_at=now,
                buckets=tuple(consumed),
                revision=acc.revision,
                destination=rs.destination,
                location=session.location,
                catalogue_version=rs.catalogue_version,
            )
        )
        self._notices(consumed, wallet_before)

    def _notices(self, consumed: list[tuple[str, int]], wallet_before: int) -> None:
        """Thresholds this debit crossed: a bucket at 80% and 100% used, the wallet going low."""
        acc, now = self.acc, self.now
        for bucket_id, taken in consumed:
            bucket = acc.buckets[bucket_id]
            used_after = bucket.total - bucket.remaining
            used_before = used_after - taken
            for percent in self.policy.bucket_thresholds:
                if used_before * 100 < percent * bucket.total <= used_after * 100:
                    self.notices.append(
                        NotificationEvent(
                            f"{acc.msisdn}#{bucket_id}#{percent}",
                            acc.msisdn,
                            f"bucket-{percent}",
                            now,
                            bucket.service.value,
                            bucket.package,
                            bucket_id,
                            bucket.remaining,
                            bucket.total,
                            acc.wallet,
                        )
                    )
        low = self.policy.low_wallet
        if wallet_before >= low > acc.wallet:
            # once per fall below the line: a top-up and a new fall tell again (revision tells them apart)
            self.notices.append(
                NotificationEvent(
                    f"{acc.msisdn}#wallet-low#{acc.revision}",
                    acc.msisdn,
                    "wallet-low",
                    now,
                    wallet=acc.wallet,
                )
            )

    # --- requests -----------------------------------------------------------------------------

    def _rated(self, session: Session, usage: ServiceUsage) -> RatedService | None:
        rs = session.services.get(usage.rating_group)
        if rs is not None:
            return rs
        rule = self.catalogue.rate(usage.service, session.location, usage.destination, usage.rating_group)
        if rule is None:
            return None
        rs = RatedService(
            usage.service, rule.id, rule.price, rule.per, rule.bucket, usage.destination,
            catalogue_version=self.catalogue.version,
        )  # fmt: skip
        session.services[usage.rating_group] = rs
        return rs

    def _wanted(self, usage: ServiceUsage) -> int:
        quota = self.policy.quotas[usage.service]
        if usage.requested is None:
            return quota.default
        return min(usage.requested, quota.maximum)

    def session_request(self, req: ChargeRequest) -> ChargeAnswer:
        acc, now = self.acc, self.now
        if req.request_type is RequestType.INITIAL:
            acc.sessions[req.session_id] = Session(req.session_id, 0, now, req.location)
            self.changed.add(req.session_id)
        session = self._writable(req.session_id)
        session.last_request = req.request_number
        session.updated_at = now
        terminate = req.request_type is RequestType.TERMINATE
        results: list[ServiceResult] = []
        for usage in req.services:
            rs = self._rated(session, usage)
            if rs is None:
                results.append(ServiceResult(usage.rating_group, ResultCode.RATING_FAILED))
                continue
            if usage.used > 0:
                self._debit(session, req, usage.rating_group, rs, usage.used)
            else:
                self._release(rs)
            if terminate or usage.requested == 0:
                results.append(ServiceResult(usage.rating_group, ResultCode.SUCCESS))
                continue
            if acc.status is not Status.ACTIVE:
                results.append(ServiceResult(usage.rating_group, ResultCode.END_USER_SERVICE_DENIED))
                continue
            granted, final = self._reserve(rs, self._wanted(usage))
            if granted == 0:
                results.append(ServiceResult(usage.rating_group, ResultCode.CREDIT_LIMIT_REACHED))
            else:
                policy = self.policy
                redirect = (
                    policy.redirect_url
                    if final and usage.rating_group in policy.redirect_rating_groups
                    else ""
                )
                results.append(
                    ServiceResult(
                        usage.rating_group,
                        ResultCode.SUCCESS,
                        granted,
                        policy.validity_time,
                        final,
                        redirect,
                        policy.quota_holding_time or None,
                    )
                )
        code = _command_code(results)
        if terminate or (req.request_type is RequestType.INITIAL and code is not ResultCode.SUCCESS):
            # RFC 8506: a failed CCR-I ends the session, as a CCR-T does
            for rs in session.services.values():
                self._release(rs)
            session.finished_at = now
        return _answer(req, code, tuple(results))

    def event(self, req: ChargeRequest) -> ChargeAnswer:
        """Immediate event charging (an SMS): every unit is paid now, or nothing is."""
        acc, now = self.acc, self.now
        session = Session(req.session_id, req.request_number, now, req.location, finished_at=now)
        acc.sessions[req.session_id] = session
        self.changed.add(req.session_id)
        if acc.status is not Status.ACTIVE:
            return _answer(req, ResultCode.END_USER_SERVICE_DENIED)
        results: list[ServiceResult] = []
        plans: list[tuple[ServiceUsage, RatedService, int]] = []
        for usage in req.services:
            rs = self._rated(session, usage)
            if rs is None:
                # all or nothing: give back what this event held so far (the session is finished,
                # and a finished session's holds were never released: its money stayed held)
                for _, held_rs, _ in plans:
                    self._release(held_rs)
                return _answer(
                    req,
                    ResultCode.RATING_FAILED,
                    (ServiceResult(usage.rating_group, ResultCode.RATING_FAILED),),
                )
            units = usage.used or (usage.requested if usage.requested is not None else 1)
            granted, _ = self._reserve(rs, units)
            if granted < units:
                for _, held_rs, _ in plans:
                    self._release(held_rs)
                self._release(rs)
                return _answer(
                    req,
                    ResultCode.CREDIT_LIMIT_REACHED,
                    (ServiceResult(usage.rating_group, ResultCode.CREDIT_LIMIT_REACHED),),
                )
            plans.append((usage, rs, units))
        for usage, rs, units in plans:
            self._debit(session, req, usage.rating_group, rs, units)
            results.append(ServiceResult(usage.rating_group, ResultCode.SUCCESS, units))
        return _answer(req, ResultCode.SUCCESS, tuple(results))

    def finish(self, answer: ChargeAnswer, req: ChargeRequest) -> Outcome:
        acc = self.acc
        session = acc.sessions.get(req.session_id)
        if session is not None and req.session_id in self.changed:
            # retransmissions come soon; the last few answers suffice. Request numbers only grow in
            # a session (a lower one is refused before it gets here), so the newest goes last.
            session.answers = (*session.answers[-(KEPT_ANSWERS - 1) :], kept_answer(answer, session.id))
            if session.finished_at is not None and session.services:
                # what it used is in its usage events, and it holds nothing now (released above):
                # a finished session is kept only to answer retransmissions, 300 s at 2,500
                # sessions a second, and its rated services were a fifth of what it kept
                session.services = {}
            acc.sessions.settle(req.session_id)
        acc.revision += 1
        acc.next_sweep = next_sweep(acc, self.policy, self.now, None if self.swept else self.changed)
        return Outcome(answer, acc, self.changed, self.removed, self.events, self.notices)


def next_sweep(acc: Account, policy: ChargingPolicy, now: int, changed: set[str] | None = None) -> int:
    """The next time `sweep` has work. With `changed`, only those sessions are looked at: the
    others' deadlines did not move, and a deadline that moved later only makes a sweep early."""
    live = acc.sessions.live  # the finished ones are forgotten window by window: `forget_at`
    ids = live.keys() if changed is None else changed
    deadline = now + policy.idle_session_timeout if changed is None else acc.next_sweep
    for sid in ids:
        session = live.get(sid)
        if session is not None:
            deadline = min(deadline, session.next_deadline(policy.forget_after, policy.idle_session_timeout))
    forget = acc.sessions.forget_at(policy.answer_retention)
    if forget is not None:
        deadline = min(deadline, forget)
    if changed is None:
        for bucket in acc.buckets.values():
            deadline = min(deadline, bucket.valid_until)
    return deadline


def _command_code(results: list[ServiceResult]) -> ResultCode:
    """2001 when any rating group succeeded (or none was asked), else the first failure."""
    if not results or any(r.result_code is ResultCode.SUCCESS for r in results):
        return ResultCode.SUCCESS
    return results[0].result_code
