"""Hundreds of concurrent sessions on one subscriber, through the charging service and the
journalled embedded balance store, until the wallet runs out: nothing is double-spent, the
wallet never goes below zero, and what was debited is exactly the rated value of the usage."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account
from cellcelly.domain.catalogue import Catalogue, parse_catalogue
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.money import ceil_div
from cellcelly.domain.provisioning import open_account
from cellcelly.domain.units import Service
from cellcelly.ports.balance_store import Commit

pytestmark = pytest.mark.integration

MSISDN = "5321112233"
ABROAD = "4915112345678"
PRICE, PER = 250, 60  # 2.50 TL per minute, from the wallet only
INITIAL_WALLET = 100_000  # 1000 TL: 400 minutes, far less than the sessions ask for
SESSIONS = 320
THREADS = 32  # each drives SESSIONS / THREADS sessions round-robin
UPDATES = 3

CATALOGUE: Catalogue = parse_catalogue(
    {
        "version": "concurrency-1",
        "initial_wallet": "1000.00",
        "tariffs": [
            {"id": "voice-out", "service": "voice", "location": "90", "price": "2.50", "per": "1 min"},
        ],
        "packages": {},
        "charging": {
            "validity_time": 3_600,  # longer than any run, so a slow machine never sees a grant expire
            "grace": 30,
            "quotas": {"voice": {"default": "60 s", "max": "120 s"}},
        },
    }
)


class FakeClock:
    """Time that moves one second per reading, from threads at once."""

    def __init__(self, start: int) -> None:
        self._ticks = itertools.count(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return float(next(self._ticks))


@dataclass
class SessionLog:
    """One client session: INITIAL, UPDATE x UPDATES, TERMINATE, reporting exactly what it was
    granted each time, asking for a different amount each time."""

    sid: str
    asks: list[int]
    granted: int = 0  # total units granted over the session
    used: int = 0  # total units reported (always what was granted)
    codes: list[ResultCode] = field(default_factory=list)
    number: int = 0
    last_grant: int = 0
    done: bool = False

    def step(self, service: ChargingService) -> None:
        if self.number == 0:
            kind = RequestType.INITIAL
        elif self.number <= UPDATES and self.last_grant > 0:
            kind = RequestType.UPDATE
        else:
            kind = RequestType.TERMINATE
        used = self.last_grant
        requested = 0 if kind is RequestType.TERMINATE else self.asks[self.number]
        usage = ServiceUsage(1, Service.VOICE, requested, used, ABROAD)
        answer = service.charge(ChargeRequest(self.sid, kind, self.number, MSISDN, (usage,)))
        assert (answer.session_id, answer.request_number) == (self.sid, self.number)
        self.codes.append(answer.result_code)
        self.used += used
        self.number += 1
        if kind is RequestType.TERMINATE:
            assert answer.result_code is ResultCode.SUCCESS
            self.done = True
            return
        (result,) = answer.services
        assert result.result_code in (ResultCode.SUCCESS, ResultCode.CREDIT_LIMIT_REACHED)
        assert 0 <= result.granted <= requested
        if result.result_code is ResultCode.SUCCESS:
            assert result.granted > 0
        self.granted += result.granted
        self.last_grant = result.granted
        if kind is RequestType.INITIAL and result.granted == 0:
            self.done = True  # a failed CCR-I ends the session


def run_sessions(service: ChargingService, sessions: list[SessionLog]) -> None:
    """One worker drives its sessions round-robin, so all of them are live at the same time."""
    while not all(s.done for s in sessions):
        for s in sessions:
            if not s.done:
                s.step(service)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[EmbeddedBalanceStore]:
    with EmbeddedBalanceStore(tmp_path / "balances") as s:
        yield s


def provision(store: EmbeddedBalanceStore) -> None:
    def create(account: Account | None) -> tuple[None, Commit]:
        assert account is None
        change = open_account(MSISDN, CATALOGUE, None, int(time.time()))
        return None, Commit(change.account, events=change.events)

    store.transact(MSISDN, create)
    store.ack(e.seq for e in store.outbox())


def cost(units: int) -> int:
    return ceil_div(units * PRICE, PER)


@pytest.mark.parametrize("clock", ["system", "fake"])
def test_concurrent_sessions_on_one_subscriber_never_overspend(
    store: EmbeddedBalanceStore, clock: str
) -> None:
    provision(store)
    now: Callable[[], float] = time.time if clock == "system" else FakeClock(1_800_000_000)
    service = ChargingService(store, CatalogueHolder(CATALOGUE), now)

    # a watcher samples the committed account while the sessions run
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def watch() -> None:
        while not stop.is_set():
            account = store.get(MSISDN)
            assert account is not None
            seen.append((account.wallet, account.available_money()))
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rng = random.Random(SESSIONS)
    logs = [
        SessionLog(f"sess-{i}", [rng.randint(1, 120) for _ in range(UPDATES + 1)]) for i in range(SESSIONS)
    ]
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for future in [pool.submit(run_sessions, service, logs[w::THREADS]) for w in range(THREADS)]:
                future.result()
    finally:
        stop.set()
        watcher.join()

    account = store.get(MSISDN)
    assert account is not None
    everything = [e.event for e in store.outbox(limit=100_000)]
    events = [e for e in everything if e["type"] == "usage"]
    notices = [e for e in everything if e["type"] == "notification"]
    assert len(events) + len(notices) == len(everything)
    assert [n["kind"] for n in notices] == ["wallet-low"]  # told once, however many sessions ran

    # the wallet never went below zero, nor what was available
    assert seen, "the watcher saw nothing"
    assert all(wallet >= 0 and available >= 0 for wallet, available in seen)
    assert all(e["wallet_after"] >= 0 for e in events)
    assert account.wallet >= 0

    # the wallet really ran out: some sessions were refused, less than a second of credit is left
    codes = [c for log in logs for c in log.codes]
    assert ResultCode.CREDIT_LIMIT_REACHED in codes
    assert sum(1 for log in logs if log.granted > 0) >= 20
    assert account.wallet < cost(1)

    # money debited = initial - final = the rated value of each session's usage
    debited = sum(e["money"] for e in events)
    assert debited == INITIAL_WALLET - account.wallet
    assert debited == sum(cost(log.used) for log in logs)
    money_by_session: dict[str, int] = defaultdict(int)
    units_by_session: dict[str, int] = defaultdict(int)
    for e in events:
        assert e["uncharged_units"] == 0, "usage within a grant must be paid"
        assert e["bucket_units"] == 0 and e["wallet_units"] == e["units"]
        money_by_session[e["session_id"]] += e["money"]
        units_by_session[e["session_id"]] += e["wallet_units"]
    for log in logs:
        assert units_by_session[log.sid] == log.used
        assert money_by_session[log.sid] == cost(log.used)

    # no session was granted more than could be paid
    assert sum(cost(log.granted) for log in logs) <= INITIAL_WALLET
    assert sum(log.used for log in logs) == sum(log.granted for log in logs)

    # every session ended, so nothing is held any more
    assert account.held_money == 0
    assert account.held_units == {}
    for session in account.sessions.values():
        assert all(rs.reservation is None for rs in session.services.values())
        assert session.finished_at is not None
    assert all(log.done for log in logs)
