"""A subscriber's real-time balance: wallet, package buckets, live sessions and their reservations.

The aggregate is treated as immutable by the code that reads it: charging works on copies
(`Account.copy`, `Session.copy`) and hands the new versions to the store, which installs them
atomically. A failure half way therefore leaves nothing half applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cellcelly.domain.money import affordable_units, rated_cost
from cellcelly.domain.units import Service

DAY = 86_400
FINISHED_WINDOW: Final = 30  # seconds of session ends kept together, and forgotten together


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(slots=True)
class Bucket:
    """A package allowance of one service, usable from `valid_from` until (excluding) `valid_until`."""

    id: str
    service: Service
    package: str
    total: int
    remaining: int
    valid_from: int
    valid_until: int

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        id: str,
        service: Service,
        package: str,
        total: int,
        remaining: int,
        valid_from: int,
        valid_until: int,
    ) -> None:
        self.id = id
        self.service = service
        self.package = package
        self.total = total
        self.remaining = remaining
        self.valid_from = valid_from
        self.valid_until = valid_until

    def usable(self, now: int) -> bool:
        return self.valid_from <= now < self.valid_until

    def copy(self) -> Bucket:
        return Bucket(
            self.id, self.service, self.package, self.total, self.remaining, self.valid_from, self.valid_until
        )


@dataclass(slots=True)
class Reservation:
    """Units set aside for one rating group of a session until it reports usage or expires."""

    bucket_units: dict[str, int]  # bucket id -> units held
    wallet_units: int
    wallet_money: int  # kuruş held for the wallet units
    expires_at: int

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        bucket_units: dict[str, int],
        wallet_units: int,
        wallet_money: int,
        expires_at: int,
    ) -> None:
        self.bucket_units = bucket_units
        self.wallet_units = wallet_units
        self.wallet_money = wallet_money
        self.expires_at = expires_at

    @property
    def units(self) -> int:
        return sum(self.bucket_units.values()) + self.wallet_units


@dataclass(slots=True)
class RatedService:
    """One rating group of a session: the rule it is rated by, what it has used, what it holds.

    The rule's price is fixed when the rating group starts, so a catalogue change never
    re-prices a call that is already under way.
    """

    service: Service
    rule_id: str
    price: int
    per: int
    bucket: Service | None
    destination: str
    wallet_units: int = 0  # cumulative units paid from the wallet (rated cumulatively)
    money: int = 0  # cumulative kuruş debited
    used: int = 0  # cumulative units reported
    reservation: Reservation | None = None
    catalogue_version: str = ""  # the catalogue the rule (and so the price) came from

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        service: Service,
        rule_id: str,
        price: int,
        per: int,
        bucket: Service | None,
        destination: str,
        wallet_units: int = 0,
        money: int = 0,
        used: int = 0,
        reservation: Reservation | None = None,
        catalogue_version: str = "",
    ) -> None:
        self.service = service
        self.rule_id = rule_id
        self.price = price
        self.per = per
        self.bucket = bucket
        self.destination = destination
        self.wallet_units = wallet_units
        self.money = money
        self.used = used
        self.reservation = reservation
        self.catalogue_version = catalogue_version

    def cost(self, units: int) -> int:
        return rated_cost(units, self.price, self.per)

    def affordable(self, money: int) -> int:
        """Units beyond those already paid from the wallet that `money` kuruş can pay for."""
        return affordable_units(self.wallet_units, money, self.price, self.per)

    def copy(self) -> RatedService:
        r = self.reservation
        return RatedService(
            self.service,
            self.rule_id,
            self.price,
            self.per,
            self.bucket,
            self.destination,
            self.wallet_units,
            self.money,
            self.used,
            None
            if r is None
            else Reservation(dict(r.bucket_units), r.wallet_units, r.wallet_money, r.expires_at),
            self.catalogue_version,
        )


@dataclass(slots=True)
class Session:
    id: str
    last_request: int
    updated_at: int
    location: str
    services: dict[int, RatedService] = field(default_factory=dict)  # by rating group
    # the last few answers, oldest first, each a charging.KeptAnswer: a tuple, not a dict by request
    # number, so that a copy shares it (it is replaced, never changed) and a finished session keeps
    # 72 bytes for four instead of a dict's 224 (`charging.kept_answer_of` looks one up)
    answers: tuple[Any, ...] = ()
    finished_at: int | None = None  # TERMINATE or EVENT answered

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        id: str,
        last_request: int,
        updated_at: int,
        location: str,
        services: dict[int, RatedService] | None = None,
        answers: tuple[Any, ...] = (),
        finished_at: int | None = None,
    ) -> None:
        self.id = id
        self.last_request = last_request
        self.updated_at = updated_at
        self.location = location
        self.services = {} if services is None else services
        self.answers = answers
        self.finished_at = finished_at

    def copy(self) -> Session:
        return Session(
            self.id,
            self.last_request,
            self.updated_at,
            self.location,
            {rg: s.copy() for rg, s in self.services.items()},
            self.answers,
            self.finished_at,
        )

    def next_deadline(self, forget_after: int, idle_timeout: int) -> int:
        """When this session next needs attention: a reservation expiring, or being forgotten
        (`forget_after` seconds after it finished, `ChargingPolicy.forget_after`)."""
        deadlines = [s.reservation.expires_at for s in self.services.values() if s.reservation is not None]
        if self.finished_at is not None:
            deadlines.append(self.finished_at + forget_after)
        elif not deadlines:
            deadlines.append(self.updated_at + idle_timeout)
        return min(deadlines)


class Sessions:
    """An account's sessions by id, read as a dict is, but cheap to copy however many finished
    sessions the account keeps.

    charge() copies the account it is given, and an account keeps every session that ended in the
    last `answer_retention` (300 s) for its retransmissions: a subscriber ending a session every 4 s
    keeps 75, and copying them with every charge was a tenth of the OCS's CPU at 10,000 CCR/s
    (docs/performance-log.md). So the live sessions are a dict of their own, copied with the account,
    and the finished ones are kept by the `FINISHED_WINDOW` they ended in, a dict a window, shared
    between copies until one of them adds or drops a session of that window. A finished session
    is never changed, only forgotten, a whole window at a time (`forget_ended_before`).

    A new session's id is looked for in every window; each window's ids are also summed up in a
    62-bit mask of their hashes, so that a window is opened only when its mask says the id may be
    there: looked for in every window's dict, the misses were 7% of `cellcelly run`'s CPU after
    180 s at 10,000 CCR/s (a cache miss a window).
    """

    def __init__(
        self,
        live: dict[str, Session] | None = None,
        windows: dict[int, dict[str, Session]] | None = None,
        masks: dict[int, int] | None = None,
    ) -> None:
        self.live: dict[str, Session] = {} if live is None else live
        # by start, oldest first: `forget_at` reads the first
        self._windows: dict[int, dict[str, Session]] = {} if windows is None else windows
        self._masks: dict[int, int] = {} if masks is None else masks  # by start: the ids' `_bit`s
        # the windows whose dict is this copy's alone; None: none, nor `_windows` and `_masks`
        self._own: set[int] | None = None

    @staticmethod
    def of(sessions: Mapping[str, Session]) -> Sessions:
        new = Sessions()
        for sid, session in sessions.items():
            new[sid] = session
        return new

    def copy(self) -> Sessions:
        self._own = None  # all shared now: whichever copy changes a window copies it first
        return Sessions(dict(self.live), self._windows, self._masks)

    # --- reading, as a dict ---------------------------------------------------------------------

    def get(self, sid: str) -> Session | None:
        session = self.live.get(sid)
        if session is None and self._masks:
            bit = _bit(sid)
            for start, mask in self._masks.items():
                if mask & bit:
                    session = self._windows[start].get(sid)
                    if session is not None:
                        break
        return session

    def __getitem__(self, sid: str) -> Session:
        session = self.get(sid)
        if session is None:
            raise KeyError(sid)
        return session

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, str) and self.get(sid) is not None

    def __len__(self) -> int:
        return len(self.live) + sum(len(w) for w in self._windows.values())

    def __iter__(self) -> Iterator[str]:
        yield from self.live
        for window in self._windows.values():
            yield from window

    def keys(self) -> Iterator[str]:
        return iter(self)

    def values(self) -> Iterator[Session]:
        yield from self.live.values()
        for window in self._windows.values():
            yield from window.values()

    def items(self) -> Iterator[tuple[str, Session]]:
        yield from self.live.items()
        for window in self._windows.values():
            yield from window.items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sessions):
            return dict(self.items()) == dict(other.items())
        return isinstance(other, dict) and dict(self.items()) == other

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __repr__(self) -> str:
        return f"Sessions({dict(self.items())!r})"

    # --- changing -------------------------------------------------------------------------------

    def __setitem__(self, sid: str, session: Session) -> None:
        if session.finished_at is None and sid in self.live:
            self.live[sid] = session  # in its place, as a dict keeps it
            return
        self.discard(sid)
        if session.finished_at is None:
            self.live[sid] = session
        else:
            self._put(sid, session, session.finished_at)

    def __delitem__(self, sid: str) -> None:
        if not self.discard(sid):
            raise KeyError(sid)

    def settle(self, sid: str) -> None:
        """Move a live session that has since finished to its window (charging finishes a session
        it already holds)."""
        session = self.live.get(sid)
        if session is not None and session.finished_at is not None:
            del self.live[sid]
            # the session's own id as the key, not the finishing request's copy of it
            self._put(session.id, session, session.finished_at)

    def forget_ended_before(self, moment: int) -> list[str]:
        """Forget the finished sessions of every window over by `moment`; their ids."""
        gone: list[str] = []
        over = []
        for start in self._windows:  # oldest first (`_writable`)
            if start + FINISHED_WINDOW > moment:
                break
            over.append(start)
        if over:
            own = self._owned()
            for start in over:
                gone += self._windows.pop(start)
                del self._masks[start]
                own.discard(start)
        return gone

    def forget_at(self, retention: int) -> int | None:
        """When `forget_ended_before(now - retention)` next forgets anything (None: nothing finished)."""
        for start in self._windows:  # the first is the oldest (`_writable`)
            return start + FINISHED_WINDOW + retention
        return None

    def _owned(self) -> set[int]:
        """The windows this copy owns, the dict of windows itself copied first if it was shared."""
        own = self._own
        if own is None:
            self._windows = dict(self._windows)
            self._masks = dict(self._masks)
            own = self._own = set()
        return own

    def _writable(self, start: int) -> dict[str, Session]:
        """The dict of the window starting at `start`, this copy's own (an empty one if none)."""
        own = self._owned()
        window = self._windows.get(start)
        if window is None or start not in own:
            if window is None:
                window = self._windows[start] = {}
                self._masks[start] = 0
                if start < max(self._windows):  # a clock stepped back: still kept oldest first
                    self._windows = dict(sorted(self._windows.items()))
            else:
                window = self._windows[start] = dict(window)
            own.add(start)
        return window

    def _put(self, sid: str, session: Session, finished_at: int) -> None:
        start = finished_at - finished_at % FINISHED_WINDOW
        self._writable(start)[sid] = session
        self._masks[start] |= _bit(sid)

    def discard(self, sid: str) -> bool:
        """Drop `sid` if held; whether it was."""
        if self.live.pop(sid, None) is not None:
            return True
        bit = _bit(sid)
        for start, mask in self._masks.items():
            if mask & bit and sid in self._windows[start]:
                window = self._writable(start)
                del window[sid]  # its bit stays: a mask may say "maybe" of an id it no longer has
                if not window:
                    del self._windows[start]
                    del self._masks[start]
                    self._owned().discard(start)
                return True
        return False


def _bit(sid: str) -> int:
    """The bit of a window's mask that stands for `sid` (62 bits: a small int to mypyc)."""
    return 1 << hash(sid) % 62


@dataclass(slots=True)
class Account:
    msisdn: str
    status: Status
    wallet: int  # kuruş
    buckets: dict[str, Bucket] = field(default_factory=dict)
    held_money: int = 0  # kuruş held by live reservations
    held_units: dict[str, int] = field(default_factory=dict)  # bucket id -> units held
    sessions: Sessions = field(default_factory=Sessions)
    next_sweep: int = 0  # earliest time a reservation expires or a session may be forgotten
    revision: int = 0  # bumped by every committed change (optimistic concurrency for remote stores)
    recent_references: tuple[str, ...] = ()  # the last top-ups applied, so a retry is recognised
    # top-ups applied here whose once-only decision is not yet durable elsewhere (a voucher not yet
    # marked credited in the record): kept, however many top-ups follow, until released
    held_references: tuple[str, ...] = ()

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        msisdn: str,
        status: Status,
        wallet: int,
        buckets: dict[str, Bucket] | None = None,
        held_money: int = 0,
        held_units: dict[str, int] | None = None,
        sessions: Sessions | None = None,
        next_sweep: int = 0,
        revision: int = 0,
        recent_references: tuple[str, ...] = (),
        held_references: tuple[str, ...] = (),
    ) -> None:
        self.msisdn = msisdn
        self.status = status
        self.wallet = wallet
        self.buckets = {} if buckets is None else buckets
        self.held_money = held_money
        self.held_units = {} if held_units is None else held_units
        self.sessions = Sessions() if sessions is None else sessions
        self.next_sweep = next_sweep
        self.revision = revision
        self.recent_references = recent_references
        self.held_references = held_references

    def copy(self) -> Account:
        """A copy whose dicts are its own; buckets and sessions are shared until replaced, so
        whoever changes one copies it first (see `charging._Transaction`)."""
        return Account(
            self.msisdn,
            self.status,
            self.wallet,
            dict(self.buckets),
            self.held_money,
            dict(self.held_units),
            self.sessions.copy(),
            self.next_sweep,
            self.revision,
            self.recent_references,
            self.held_references,
        )

    # --- what can still be spent --------------------------------------------------------------

    def available_money(self) -> int:
        return self.wallet - self.held_money

    def available_units(self, bucket: Bucket, now: int) -> int:
        if not bucket.usable(now):
            return 0
        return bucket.remaining - self.held_units.get(bucket.id, 0)

    def usable_buckets(self, service: Service, now: int) -> list[Bucket]:
        """Buckets of a service that can pay now, the one expiring first first."""
        found = [b for b in self.buckets.values() if b.service is service and b.usable(now)]
        found.sort(key=lambda b: (b.valid_until, b.id))
        return found

    def balance_view(self, now: int) -> dict[Service, int]:
        """Remaining units per service available now (after live reservations)."""
        view = dict.fromkeys(Service, 0)
        for bucket in self.buckets.values():
            view[bucket.service] += max(0, self.available_units(bucket, now))
        return view
