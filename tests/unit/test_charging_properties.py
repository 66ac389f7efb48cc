"""Property-based test of the pure charging state machine.

A hypothesis state machine drives `charge` on one subscriber with several concurrent sessions in
random interleavings (voice from a bucket or the wallet only, data from a bucket or free, SMS
events), on a small wallet and small buckets so that every limit is hit often, and checks the
DESIGN invariants after every step: nothing below zero, holds are exactly the live reservations,
money and bucket units are conserved, cumulative rating per session rating group, retransmissions
change nothing, expired reservations give their quota back.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cellcelly.codec import account_to_dict
from cellcelly.domain.account import DAY, Account, Bucket, Status
from cellcelly.domain.catalogue import Catalogue, parse_catalogue
from cellcelly.domain.charging import (
    ChargeAnswer,
    ChargeRequest,
    Outcome,
    RequestType,
    ResultCode,
    ServiceUsage,
    UsageEvent,
    charge,
)
from cellcelly.domain.money import ceil_div
from cellcelly.domain.provisioning import set_status, top_up
from cellcelly.domain.units import Service

pytestmark = [pytest.mark.unit, pytest.mark.slow]

T0 = 1_800_000_000
MSISDN = "5329998877"
TR = "905551112233"
DE = "4915112345678"
UNRATED = "999"  # no tariff goes there: 5031

CATALOGUE: Catalogue = parse_catalogue(
    {
        "version": "prop-1",
        "initial_wallet": "0",
        "tariffs": [
            {
                "id": "voice-home",
                "service": "voice",
                "location": "90",
                "destination": "90",
                "price": "0.95",
                "per": "1 min",
                "bucket": "voice",
            },
            {"id": "voice-out", "service": "voice", "location": "90", "price": "2.50", "per": "1 min"},
            {
                "id": "sms-home",
                "service": "sms",
                "location": "90",
                "destination": "90",
                "price": "1.00",
                "per": "1 msg",
                "bucket": "sms",
            },
            # abroad: to Germany only, so that an SMS elsewhere (UNRATED) has no tariff
            {
                "id": "sms-out",
                "service": "sms",
                "location": "90",
                "destination": "49",
                "price": "4.00",
                "per": "1 msg",
            },
            {
                "id": "data-home",
                "service": "data",
                "location": "90",
                "price": "0.15",
                "per": "1 KB",
                "bucket": "data",
            },
            {"id": "data-free", "service": "data", "rating_group": 10, "price": "0", "per": "1 KB"},
        ],
        "packages": {},
        "charging": {
            "validity_time": 600,
            "grace": 30,
            "answer_retention": 300,
            "idle_session_timeout": 86_400,
            "quotas": {
                "voice": {"default": "60 s", "max": "600 s"},
                "sms": {"default": "1 msg", "max": "5 msg"},
                "data": {"default": "10 KB", "max": "64 KB"},
            },
        },
    }
)
POLICY = CATALOGUE.policy
RULES = {r.id: r for r in CATALOGUE.tariffs}
ANSWERS_KEPT = 4  # a session keeps the answers of its last four requests for retransmissions
LIFETIME = POLICY.validity_time + POLICY.grace

# session kinds: (rating group, service, destination) per rating group
KINDS: dict[str, tuple[tuple[int, Service, str], ...]] = {
    "voice-home": ((1, Service.VOICE, TR),),
    "voice-out": ((1, Service.VOICE, DE),),
    "data": ((1, Service.DATA, ""),),
    "mixed": ((1, Service.VOICE, TR), (2, Service.DATA, ""), (10, Service.DATA, "")),
    "voice-both": ((1, Service.VOICE, DE), (3, Service.VOICE, TR)),
}

requested_strategy = st.one_of(
    st.none(), st.just(0), st.integers(min_value=1, max_value=700), st.integers(min_value=1, max_value=70_000)
)


@dataclass
class SessionModel:
    sid: str
    rgs: dict[int, tuple[Service, str]]
    next_number: int = 1
    granted: dict[int, int] = field(default_factory=dict)  # last grant per rating group
    expires: dict[int, int] = field(default_factory=dict)  # when that grant's reservation expires
    finished: bool = False


class ChargingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.acc: Account = Account(MSISDN, Status.ACTIVE, 0)
        self.now = T0
        self.credited = 0  # initial wallet + top-ups
        self.initial_buckets: dict[str, Bucket] = {}
        self.sessions: dict[str, SessionModel] = {}
        self.history: list[tuple[ChargeRequest, ChargeAnswer]] = []
        self.events: list[UsageEvent] = []
        self.reported: dict[tuple[str, int], int] = defaultdict(int)
        self.counter = 0

    # --- set-up ---------------------------------------------------------------------------------

    @initialize(
        wallet=st.integers(min_value=0, max_value=5_000),
        voice_s=st.integers(min_value=0, max_value=600),
        short_voice_s=st.integers(min_value=0, max_value=200),
        short_life=st.integers(min_value=0, max_value=2_000),
        sms_n=st.integers(min_value=0, max_value=3),
        data_b=st.integers(min_value=0, max_value=60_000),
    )
    def setup(
        self, wallet: int, voice_s: int, short_voice_s: int, short_life: int, sms_n: int, data_b: int
    ) -> None:
        acc = Account(MSISDN, Status.ACTIVE, wallet)
        specs = [
            ("voice-long", Service.VOICE, voice_s, T0 + 30 * DAY),
            ("voice-short", Service.VOICE, short_voice_s, T0 + short_life),  # may expire mid-call
            ("sms", Service.SMS, sms_n, T0 + 30 * DAY),
            ("data", Service.DATA, data_b, T0 + 30 * DAY),
        ]
        for bid, service, units, until in specs:
            if units:
                acc.buckets[bid] = Bucket(bid, service, "P", units, units, T0 - DAY, until)
        self.acc = acc
        self.credited = wallet
        self.initial_buckets = {bid: b.copy() for bid, b in acc.buckets.items()}

    # --- helpers --------------------------------------------------------------------------------

    def _sid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _apply(self, req: ChargeRequest) -> Outcome:
        before = account_to_dict(self.acc)
        outcome = charge(self.acc, CATALOGUE, req, self.now)
        assert account_to_dict(self.acc) == before, "charge() changed the account it was given"
        answer = outcome.answer
        assert (answer.session_id, answer.request_type, answer.request_number) == (
            req.session_id,
            req.request_type,
            req.request_number,
        )
        for e in outcome.events:
            assert e.units == e.bucket_units + e.wallet_units + e.uncharged_units
            assert min(e.bucket_units, e.wallet_units, e.uncharged_units, e.money) >= 0
            assert e.bucket_units == sum(u for _, u in e.buckets)
            assert (e.session_id, e.request_number, e.msisdn) == (req.session_id, req.request_number, MSISDN)
            assert e.event_id == f"{req.session_id}#{req.request_number}#{e.rating_group}"
            assert e.occurred_at == self.now
        assert len({e.event_id for e in self.events + outcome.events}) == len(self.events) + len(
            outcome.events
        ), "event ids must be unique"
        if outcome.account is not None:
            assert outcome.account.wallet == (
                outcome.events[-1].wallet_after if outcome.events else outcome.account.wallet
            )
            self.acc = outcome.account
        self.events.extend(outcome.events)
        self.history.append((req, answer))
        return outcome

    def _usage(
        self, s: SessionModel, data: st.DataObject, *, with_request: bool
    ) -> tuple[list[ServiceUsage], dict[int, bool]]:
        """The usage to report for some of the session's rating groups, and whether each report
        is within a live grant (then nothing may go uncharged)."""
        rgs = data.draw(st.lists(st.sampled_from(sorted(s.rgs)), unique=True, max_size=len(s.rgs)), "rgs")
        usages: list[ServiceUsage] = []
        within: dict[int, bool] = {}
        for rg in rgs:
            service, dest = s.rgs[rg]
            granted = s.granted.get(rg, 0)
            how = data.draw(st.sampled_from(["zero", "all", "some", "over"]), f"how-{rg}")
            if how == "zero" or (granted == 0 and how != "over"):
                used = 0
            elif how == "all":
                used = granted
            elif how == "some":
                used = data.draw(st.integers(min_value=0, max_value=granted), f"used-{rg}")
            else:
                used = granted + data.draw(st.integers(min_value=1, max_value=500), f"over-{rg}")
            within[rg] = used <= granted and self.now < s.expires.get(rg, 0)
            requested = data.draw(requested_strategy, f"req-{rg}") if with_request else None
            usages.append(ServiceUsage(rg, service, requested, used, dest))
            if used > 0:
                self.reported[(s.sid, rg)] += used
        return usages, within

    def _record_grants(self, s: SessionModel, usages: list[ServiceUsage], answer: ChargeAnswer) -> None:
        by_rg = {u.rating_group: u for u in usages}
        for result in answer.services:
            usage = by_rg[result.rating_group]
            quota = POLICY.quotas[usage.service]
            wanted = quota.default if usage.requested is None else min(usage.requested, quota.maximum)
            assert 0 <= result.granted <= wanted
            if result.result_code is ResultCode.SUCCESS and usage.requested != 0:
                assert result.granted > 0
                assert result.validity_time == POLICY.validity_time
            if result.result_code is not ResultCode.SUCCESS:
                assert result.granted == 0
            s.granted[result.rating_group] = result.granted
            s.expires[result.rating_group] = self.now + LIFETIME if result.granted else 0

    def _check_events_for(
        self, usages: list[ServiceUsage], within: dict[int, bool], outcome: Outcome
    ) -> None:
        charged = {u.rating_group: u.used for u in usages if u.used > 0}
        by_rg = {e.rating_group: e for e in outcome.events}
        assert set(by_rg) == set(charged), "every reported usage is debited exactly once"
        for rg, used in charged.items():
            e = by_rg[rg]
            assert e.units == used
            if within[rg]:
                assert e.uncharged_units == 0, f"usage within a live grant went uncharged: {e}"

    # --- rules ------------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def start_session(self, kind: str, data: st.DataObject) -> None:
        sid = self._sid("s")
        s = SessionModel(sid, {rg: (service, dest) for rg, service, dest in KINDS[kind]})
        usages = [
            ServiceUsage(rg, service, data.draw(requested_strategy, f"req-{rg}"), 0, dest)
            for rg, (service, dest) in s.rgs.items()
        ]
        outcome = self._apply(ChargeRequest(sid, RequestType.INITIAL, 0, MSISDN, tuple(usages)))
        assert outcome.events == []
        assert len(outcome.answer.services) == len(usages)
        self._record_grants(s, usages, outcome.answer)
        if outcome.answer.result_code is not ResultCode.SUCCESS:
            assert all(r.result_code is not ResultCode.SUCCESS for r in outcome.answer.services)
            s.finished = True
        self.sessions[sid] = s

    def _open(self) -> list[SessionModel]:
        return [s for s in self.sessions.values() if not s.finished]

    @precondition(lambda self: any(not s.finished for s in self.sessions.values()))
    @rule(data=st.data(), times=st.integers(min_value=1, max_value=3))
    def update(self, data: st.DataObject, times: int) -> None:
        s = data.draw(st.sampled_from(self._open()), "session")
        for _ in range(times):
            self._update(s, data)
            self.now += data.draw(st.integers(min_value=0, max_value=60), "pause")

    def _update(self, s: SessionModel, data: st.DataObject) -> Outcome:
        usages, within = self._usage(s, data, with_request=True)
        req = ChargeRequest(s.sid, RequestType.UPDATE, s.next_number, MSISDN, tuple(usages))
        s.next_number += 1
        outcome = self._apply(req)
        self._check_events_for(usages, within, outcome)
        self._record_grants(s, usages, outcome.answer)
        return outcome

    @precondition(lambda self: any(not s.finished for s in self.sessions.values()))
    @rule(data=st.data())
    def terminate(self, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(self._open()), "session")
        usages, within = self._usage(s, data, with_request=False)
        req = ChargeRequest(s.sid, RequestType.TERMINATE, s.next_number, MSISDN, tuple(usages))
        s.next_number += 1
        outcome = self._apply(req)
        assert outcome.answer.result_code is ResultCode.SUCCESS
        assert all(r.result_code is ResultCode.SUCCESS and r.granted == 0 for r in outcome.answer.services)
        self._check_events_for(usages, within, outcome)
        s.finished = True
        assert self.acc.sessions[s.sid].finished_at == self.now
        assert all(rs.reservation is None for rs in self.acc.sessions[s.sid].services.values())

    @rule(
        home=st.booleans(),
        count=st.integers(min_value=1, max_value=3),
        second=st.one_of(st.none(), st.integers(min_value=1, max_value=2)),
        unrated=st.booleans(),
    )
    def sms_event(self, home: bool, count: int, second: int | None, unrated: bool) -> None:
        """An SMS, sometimes with a second one; that one sometimes to where no tariff goes (5031)."""
        sid = self._sid("e")
        usages = [ServiceUsage(2, Service.SMS, None, count, TR if home else DE)]
        if second is not None:
            usages.append(
                ServiceUsage(3, Service.SMS, None, second, UNRATED if unrated else DE if home else TR)
            )
        wallet_before = self.acc.wallet
        remaining_before = {bid: b.remaining for bid, b in self.acc.buckets.items()}
        outcome = self._apply(ChargeRequest(sid, RequestType.EVENT, 0, MSISDN, tuple(usages)))
        acc = self.acc
        if outcome.answer.result_code is ResultCode.SUCCESS:
            assert [(e.rating_group, e.units) for e in outcome.events] == [
                (u.rating_group, u.used) for u in usages
            ]
            assert all(e.uncharged_units == 0 for e in outcome.events)
            for u in usages:
                self.reported[(sid, u.rating_group)] += u.used
        elif outcome.answer.result_code is ResultCode.END_USER_SERVICE_DENIED:
            assert acc.status is Status.SUSPENDED
            assert outcome.events == []
        elif outcome.answer.result_code is ResultCode.RATING_FAILED:
            assert second is not None and unrated
            assert outcome.events == [] and acc.wallet == wallet_before
        else:
            assert outcome.answer.result_code is ResultCode.CREDIT_LIMIT_REACHED
            assert outcome.events == [], "an event is charged in full or not at all"
            assert acc.wallet == wallet_before
            for bid, b in acc.buckets.items():
                assert b.remaining == remaining_before[bid]
            # and it really could not be paid
            if second is None or unrated:
                rule_ = RULES["sms-home" if home else "sms-out"]
                units = acc.available_money() // rule_.price
                if home:
                    units += sum(
                        acc.available_units(b, self.now) for b in acc.usable_buckets(Service.SMS, self.now)
                    )
                assert units < count, "an event that could be paid was refused"
        assert all(rs.reservation is None for rs in acc.sessions[sid].services.values())
        self.sessions[sid] = SessionModel(sid, {u.rating_group: (Service.SMS, u.destination) for u in usages})
        self.sessions[sid].finished = True

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def retransmit(self, data: st.DataObject) -> None:
        # any earlier request of a session the account still keeps, whether or not its answer is
        # still stored: which ones are is what this checks, not what it assumes
        known = [(req, answer) for req, answer in self.history if req.session_id in self.acc.sessions]
        if not known:
            return
        req, answer = data.draw(st.sampled_from(known), "earlier request")
        numbers = sorted(r.request_number for r, _ in self.history if r.session_id == req.session_id)
        before = account_to_dict(self.acc)
        outcome = charge(self.acc, CATALOGUE, req, self.now)
        kept = req.request_number in numbers[-ANSWERS_KEPT:]
        event("retransmission: " + ("kept" if kept else "older than the last four"))
        if kept:
            assert outcome.answer == answer, "a retransmission of one of the last requests gets its answer"
        else:  # older: refused, not charged again (a client does not retransmit that late)
            assert outcome.answer == ChargeAnswer(
                req.session_id, req.request_type, req.request_number, ResultCode.UNABLE_TO_COMPLY
            )
        assert outcome.account is None and outcome.events == []
        assert outcome.changed_sessions == set() and outcome.removed_sessions == set()
        assert account_to_dict(self.acc) == before

    @rule(
        dt=st.one_of(
            st.integers(min_value=1, max_value=120),
            st.sampled_from([LIFETIME - 1, LIFETIME, LIFETIME + 1, POLICY.answer_retention]),
            st.integers(min_value=LIFETIME, max_value=LIFETIME + 200),
        )
    )
    def advance_clock(self, dt: int) -> None:
        self.now += dt

    @rule(amount=st.integers(min_value=1, max_value=1_500))
    def top_up(self, amount: int) -> None:
        change = top_up(self.acc, amount, self._sid("t"), POLICY, self.now)
        self.acc = change.account
        self.credited += amount

    @precondition(lambda self: any(not s.finished for s in self.sessions.values()))
    @rule(data=st.data())
    def update_while_suspended(self, data: st.DataObject) -> None:
        """Usage is still debited while the subscriber is suspended, but nothing new is granted."""
        s = data.draw(st.sampled_from(self._open()), "session")
        self.acc = set_status(self.acc, Status.SUSPENDED, self._sid("st"), POLICY, self.now).account
        outcome = self._update(s, data)
        for result in outcome.answer.services:
            assert result.granted == 0
            assert result.result_code in (ResultCode.SUCCESS, ResultCode.END_USER_SERVICE_DENIED)
        self.acc = set_status(self.acc, Status.ACTIVE, self._sid("st"), POLICY, self.now).account

    @precondition(lambda self: self.acc.held_money > 0 or bool(self.acc.held_units))
    @rule(extra=st.integers(min_value=0, max_value=20))
    def expire_everything(self, extra: int) -> None:
        self._expire_everything(extra)

    def _expire_everything(self, extra: int) -> None:
        expiries = [
            rs.reservation.expires_at
            for s in self.acc.sessions.values()
            for rs in s.services.values()
            if rs.reservation is not None
        ]
        if expiries:
            self.now = max(self.now, max(expiries)) + extra
        # one more operation for the subscriber (a call from an unrated location holds nothing)
        sid = self._sid("probe")
        usage = ServiceUsage(1, Service.VOICE, None, 0, TR)
        outcome = self._apply(ChargeRequest(sid, RequestType.INITIAL, 0, MSISDN, (usage,), "33"))
        assert outcome.answer.result_code is ResultCode.RATING_FAILED
        self.sessions[sid] = SessionModel(sid, {1: (Service.VOICE, TR)}, finished=True)
        assert self.acc.held_money == 0, "expired reservations return their money"
        assert self.acc.held_units == {}, "expired reservations return their units"
        for s in self.acc.sessions.values():
            assert all(rs.reservation is None for rs in s.services.values())
        for s in self.sessions.values():
            s.expires = {}

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def nothing_below_zero_and_holds_match_reservations(self) -> None:
        acc = self.acc
        assert acc.wallet >= 0
        assert acc.available_money() >= 0
        money = 0
        units: dict[str, int] = defaultdict(int)
        for session in acc.sessions.values():
            for rs in session.services.values():
                if rs.reservation is not None:
                    assert session.finished_at is None, "a finished session holds nothing"
                    money += rs.reservation.wallet_money
                    for bid, n in rs.reservation.bucket_units.items():
                        assert n > 0
                        units[bid] += n
        assert acc.held_money == money
        assert acc.held_units == dict(units)
        for bucket in acc.buckets.values():
            assert bucket.remaining >= 0
            assert bucket.remaining - acc.held_units.get(bucket.id, 0) >= 0
            assert acc.available_units(bucket, self.now) >= 0

    @invariant()
    def money_is_conserved(self) -> None:
        assert self.credited - self.acc.wallet == sum(e.money for e in self.events)

    @invariant()
    def wallet_usage_is_rated_cumulatively(self) -> None:
        per_rg: dict[tuple[str, int], list[UsageEvent]] = defaultdict(list)
        for e in self.events:
            per_rg[(e.session_id, e.rating_group)].append(e)
        for (sid, rg), events in per_rg.items():
            assert len({e.rule_id for e in events}) == 1
            rule_ = RULES[events[0].rule_id]
            wallet_units = sum(e.wallet_units for e in events)
            money = sum(e.money for e in events)
            assert money == ceil_div(wallet_units * rule_.price, rule_.per), (sid, rg)
            assert sum(e.units for e in events) == self.reported[(sid, rg)]
            session = self.acc.sessions.get(sid)
            if session is not None and session.finished_at is None:
                rs = session.services[rg]
                assert (rs.money, rs.wallet_units, rs.used) == (money, wallet_units, self.reported[(sid, rg)])
            elif session is not None:  # kept for retransmissions only: what it used is in its events
                assert not session.services, sid
        charged_keys = set(per_rg)
        assert {k for k, v in self.reported.items() if v} == charged_keys

    @invariant()
    def bucket_units_are_conserved(self) -> None:
        consumed: dict[str, int] = defaultdict(int)
        for e in self.events:
            for bid, n in e.buckets:
                consumed[bid] += n
        for bid, initial in self.initial_buckets.items():
            bucket = self.acc.buckets.get(bid)
            if bucket is None:
                assert initial.valid_until <= self.now, f"bucket {bid} vanished before it expired"
                assert consumed[bid] <= initial.total
            else:
                assert initial.total - bucket.remaining == consumed[bid]
        assert set(consumed) <= set(self.initial_buckets)

    @invariant()
    def the_next_sweep_is_not_late(self) -> None:
        for s in self.acc.sessions.values():
            assert self.acc.next_sweep <= s.next_deadline(POLICY.forget_after, POLICY.idle_session_timeout)

    def teardown(self) -> None:
        if self.initial_buckets or self.credited or self.sessions:
            self._expire_everything(1)
            self.money_is_conserved()
            self.bucket_units_are_conserved()
            self.wallet_usage_is_rated_cumulatively()


ChargingMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCharging = ChargingMachine.TestCase


def test_the_last_four_answers_of_a_session_are_replayed() -> None:
    """After five requests (n = 4), request n-3 retransmitted still gets its stored answer and
    changes nothing; request n-4 is refused (5012) and changes nothing either."""
    acc = Account(MSISDN, Status.ACTIVE, 100_000)
    sid = "five"
    answers = []
    now = T0
    for n in range(5):
        kind = RequestType.INITIAL if n == 0 else RequestType.UPDATE
        used = 0 if n == 0 else 60
        req = ChargeRequest(sid, kind, n, MSISDN, (ServiceUsage(1, Service.VOICE, 60, used, DE),))
        outcome = charge(acc, CATALOGUE, req, now)
        assert outcome.answer.result_code is ResultCode.SUCCESS and outcome.account is not None
        acc = outcome.account
        answers.append((req, outcome.answer))
        now += 60
    wallet = acc.wallet
    assert wallet == 100_000 - 4 * 250
    for req, answer in answers[1:]:  # n-3 .. n
        outcome = charge(acc, CATALOGUE, req, now)
        assert outcome.answer == answer, f"request {req.request_number} retransmitted"
        assert outcome.account is None and outcome.events == []
    oldest, _ = answers[0]  # n-4
    outcome = charge(acc, CATALOGUE, oldest, now)
    assert outcome.answer == ChargeAnswer(sid, RequestType.INITIAL, 0, ResultCode.UNABLE_TO_COMPLY)
    assert outcome.account is None and outcome.events == []
    assert acc.wallet == wallet
