"""The contract every balance store adapter must pass (see cellcelly.ports.balance_store).

Subclass `BalanceStoreContract` (a durable adapter: `DurableBalanceStoreContract`) in a `test_*.py`
module and implement `make_store` (and, when durable, `reopen`: close the store and open a new one
over the same data). The tests use only the `BalanceStore` port, the pure domain functions and the
codec.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.codec import account_to_dict, event_to_dict
from cellcelly.domain.account import Account
from cellcelly.domain.catalogue import Catalogue
from cellcelly.domain.charging import (
    ChargeAnswer,
    ChargeRequest,
    RequestType,
    ResultCode,
    ServiceUsage,
    charge,
    kept_answer_of,
)
from cellcelly.domain.provisioning import AccountChange, open_account, top_up
from cellcelly.domain.units import Service
from cellcelly.errors import StoreError
from cellcelly.ports.balance_store import BalanceStore, Commit, OutboxEntry
from cellcelly.settings import DEFAULT_CATALOGUE

NOW = 1_800_000_000
A, B, C = "5320000001", "5320000002", "5320000003"
TR = "905551112233"
DE = "4915112345678"

CATALOGUE: Catalogue = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
POLICY = CATALOGUE.policy
T = TypeVar("T")


# --- helpers (usable by adapter-specific tests too) ---------------------------------------------------


def normalised(account: Account | None) -> Any:
    """An account as plain data, sessions keyed by id, so two stores' copies can be compared."""
    if account is None:
        return None
    data = orjson.loads(orjson.dumps(account_to_dict(account)))
    data["sessions"] = {s[0]: s for s in data["sessions"]}
    return data


def state_of(store: BalanceStore) -> dict[str, Any]:
    """Everything a reader can see: accounts, who owns each session, the unacknowledged outbox."""
    accounts = {m: normalised(store.get(m)) for m in sorted(store.msisdns())}
    owners = {sid: store.session_owner(sid) for acc in accounts.values() for sid in acc["sessions"]}
    outbox = [(e.seq, orjson.loads(orjson.dumps(e.event))) for e in store.outbox(limit=1_000_000)]
    return {"accounts": accounts, "owners": owners, "outbox": outbox}


def apply_change(store: BalanceStore, msisdn: str, fn: Callable[[Account | None], AccountChange]) -> Account:
    def run(account: Account | None) -> tuple[Account, Commit | None]:
        change = fn(account)
        if not change.applied:
            return change.account, None
        return change.account, Commit(change.account, events=change.events)

    return store.transact(msisdn, run)


def provision(store: BalanceStore, msisdn: str, package: str | None = "ANKARA", now: int = NOW) -> Account:
    return apply_change(store, msisdn, lambda acc: open_account(msisdn, CATALOGUE, package, now))


def credit(store: BalanceStore, msisdn: str, amount: int, reference: str, now: int = NOW) -> Account:
    def fn(acc: Account | None) -> AccountChange:
        assert acc is not None
        return top_up(acc, amount, reference, POLICY, now)

    return apply_change(store, msisdn, fn)


def charging(req: ChargeRequest, now: int) -> Callable[[Account | None], tuple[ChargeAnswer, Commit | None]]:
    """What the charging service gives `transact`: one charge(), its commit."""

    def run(account: Account | None) -> tuple[ChargeAnswer, Commit | None]:
        outcome = charge(account, CATALOGUE, req, now)
        if outcome.account is None:
            return outcome.answer, None
        return outcome.answer, Commit(
            outcome.account, outcome.changed_sessions, outcome.removed_sessions, outcome.events
        )

    return run


def charge_in(store: BalanceStore, req: ChargeRequest, now: int) -> ChargeAnswer:
    """What the charging service does: one charge() committed atomically."""
    return store.transact(req.msisdn, charging(req, now))


def topping_up(ref: str) -> Callable[[Account | None], tuple[int, Commit]]:
    """A top-up of 1 kuruş that checks it started from the account as it was (no lost update)."""

    def fn(account: Account | None) -> tuple[int, Commit]:
        assert account is not None
        change = top_up(account, 1, ref, POLICY, NOW)
        assert change.account.wallet == account.wallet + 1
        return change.account.wallet, Commit(change.account, events=change.events)

    return fn


def on_a_loop(store: BalanceStore, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main` on a loop of its own, letting go of what the store holds on it before it ends
    (VoltDB: its connections there, `leave_loop`)."""

    async def run() -> T:
        try:
            return await main()
        finally:
            leave = getattr(store, "leave_loop", None)
            if leave is not None:
                await leave()

    return asyncio.run(run())


def voice(
    msisdn: str, sid: str, kind: RequestType, number: int, used: int = 0, dest: str = TR
) -> ChargeRequest:
    usage = ServiceUsage(1, Service.VOICE, None, used, dest)
    return ChargeRequest(sid, kind, number, msisdn, (usage,))


def sms(msisdn: str, sid: str, dest: str = DE) -> ChargeRequest:
    return ChargeRequest(sid, RequestType.EVENT, 0, msisdn, (ServiceUsage(2, Service.SMS, None, 1, dest),))


def busy_history(store: BalanceStore) -> list[tuple[ChargeRequest, ChargeAnswer]]:
    """A mixed history on three subscribers: sessions still open (with reservations), finished,
    forgotten, long sessions whose oldest answers were dropped, events, top-ups."""
    answers: list[tuple[ChargeRequest, ChargeAnswer]] = []

    def run(req: ChargeRequest, now: int) -> None:
        answers.append((req, charge_in(store, req, now)))

    for m in (A, B, C):
        provision(store, m, "ANKARA" if m != C else None)
    run(voice(A, "a-old", RequestType.INITIAL, 0), NOW)
    run(voice(A, "a-old", RequestType.TERMINATE, 1, used=42), NOW + 42)
    t = NOW + POLICY.answer_retention + 100  # a-old will be forgotten by the next operation
    run(voice(A, "a-long", RequestType.INITIAL, 0, dest=DE), t)
    for n in range(1, 8):
        run(voice(A, "a-long", RequestType.UPDATE, n, used=60 * n, dest=DE), t + 10 * n)
    run(voice(A, "a-open", RequestType.INITIAL, 0), t + 100)
    run(sms(A, "a-sms"), t + 101)
    run(voice(B, "b-done", RequestType.INITIAL, 0), t)
    run(voice(B, "b-done", RequestType.TERMINATE, 1, used=300), t + 300)
    credit(store, B, 1_234, "b-top", t + 301)
    run(sms(C, "c-sms-1"), t)
    run(sms(C, "c-sms-2", TR), t + 1)
    run(voice(C, "c-open", RequestType.INITIAL, 0, dest=DE), t + 2)
    return answers


@pytest.mark.contract
class BalanceStoreContract:
    """Test methods every adapter inherits. Subclasses implement the two hooks."""

    def make_store(self, tmp_path: Path) -> BalanceStore:
        raise NotImplementedError

    # --- fixtures and plumbing ------------------------------------------------------------------

    @pytest.fixture()
    def store(self, tmp_path: Path) -> Iterator[BalanceStore]:
        self._tmp_path = tmp_path
        self._opened: list[BalanceStore] = []
        first = self.make_store(tmp_path)
        self._opened.append(first)
        yield first
        for opened in self._opened:
            opened.close()

    # --- transact ---------------------------------------------------------------------------------

    def test_transact_creates_and_reads(self, store: BalanceStore) -> None:
        assert store.get(A) is None
        seen: list[Account | None] = []

        def create(account: Account | None) -> tuple[str, Commit]:
            seen.append(account)
            change = open_account(A, CATALOGUE, "ANKARA", NOW)
            return "created", Commit(change.account, events=change.events)

        assert store.transact(A, create) == "created"
        assert seen and all(s is None for s in seen)
        account = store.get(A)
        assert account is not None
        assert (account.msisdn, account.wallet, len(account.buckets)) == (A, 10_000, 3)
        # the next transaction sees what was committed; returning no commit changes nothing
        got = store.transact(A, lambda acc: (normalised(acc), None))
        assert got == normalised(account)
        assert normalised(store.get(A)) == normalised(account)
        assert store.get(B) is None
        assert list(store.msisdns()) == [A]

    def test_fn_raising_commits_nothing(self, store: BalanceStore) -> None:
        provision(store, A)
        before = state_of(store)

        class Boom(Exception):
            pass

        def fails_after_computing(account: Account | None) -> tuple[None, Commit]:
            assert account is not None
            top_up(account, 5_000, "lost", POLICY, NOW)
            raise Boom

        with pytest.raises(Boom):
            store.transact(A, fails_after_computing)

        def fails_on_a_new_subscriber(account: Account | None) -> tuple[None, Commit]:
            change = open_account(B, CATALOGUE, None, NOW)
            if change.account is not None:
                raise Boom
            return None, Commit(change.account, events=change.events)

        with pytest.raises(Boom):
            store.transact(B, fails_on_a_new_subscriber)
        assert state_of(store) == before
        assert store.get(B) is None and B not in set(store.msisdns())
        # the subscriber is not left locked
        assert credit(store, A, 100, "after").wallet == 10_100
        assert store.get(A).wallet == 10_100  # type: ignore[union-attr]

    def test_commit_is_atomic(self, store: BalanceStore) -> None:
        provision(store, A)
        (provisioned,) = store.outbox()
        req = voice(A, "s1", RequestType.INITIAL, 0, dest=DE)
        account = store.get(A)
        outcome = charge(account, CATALOGUE, req, NOW)
        event_outcome = charge(outcome.account, CATALOGUE, sms(A, "e1"), NOW + 1)
        assert event_outcome.account is not None and len(event_outcome.events) == 1
        both = Commit(
            event_outcome.account,
            outcome.changed_sessions | event_outcome.changed_sessions,
            (),
            event_outcome.events,
        )
        store.transact(A, lambda acc: (None, both))
        stored = store.get(A)
        assert stored is not None
        assert normalised(stored) == normalised(event_outcome.account)
        assert set(stored.sessions) == {"s1", "e1"}
        assert stored.held_money == 1_250 and stored.wallet == 9_600
        assert store.session_owner("s1") == A and store.session_owner("e1") == A
        entries = store.outbox()
        assert entries[0] == provisioned
        assert [e.event for e in entries[1:]] == [event_to_dict(event_outcome.events[0])]
        assert entries[1].event["wallet_after"] == 9_600

    def test_readers_see_a_commit_whole(self, store: BalanceStore) -> None:
        provision(store, A, None)
        stop = threading.Event()
        problems: list[str] = []

        def reader() -> None:
            while not stop.is_set():
                account = store.get(A)
                assert account is not None
                wallets = {e.event["wallet_after"] for e in store.outbox(limit=1_000_000)}
                if account.wallet not in wallets:
                    problems.append(f"wallet {account.wallet} visible before its event")
                for sid in account.sessions:
                    if store.session_owner(sid) not in (A, None):
                        problems.append(f"session {sid} owned by someone else")

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for i in range(300):
                credit(store, A, 1, f"r{i}")
        finally:
            stop.set()
            thread.join()
        assert problems == []
        assert store.get(A).wallet == 10_300  # type: ignore[union-attr]

    # --- sessions -----------------------------------------------------------------------------------

    def test_session_owner_after_commit_and_removal(self, store: BalanceStore) -> None:
        provision(store, A)
        provision(store, B)
        assert store.session_owner("s1") is None
        assert charge_in(store, voice(A, "s1", RequestType.INITIAL, 0), NOW).result_code is ResultCode.SUCCESS
        assert charge_in(store, voice(B, "s2", RequestType.INITIAL, 0), NOW).result_code is ResultCode.SUCCESS
        assert store.session_owner("s1") == A
        assert store.session_owner("s2") == B
        charge_in(store, voice(A, "s1", RequestType.TERMINATE, 1, used=10), NOW + 10)
        assert store.session_owner("s1") == A  # recently finished: kept for retransmissions
        later = NOW + 10 + POLICY.forget_after
        charge_in(store, sms(A, "e1"), later)  # the sweep forgets s1
        assert "s1" not in store.get(A).sessions  # type: ignore[union-attr]
        assert store.session_owner("s1") is None
        assert store.session_owner("e1") == A
        assert store.session_owner("s2") == B

        # a commit that removes a session explicitly
        account = store.get(B)
        assert account is not None
        without = account.copy()
        del without.sessions["s2"]
        store.transact(B, lambda acc: (None, Commit(without, (), ("s2",), ())))
        assert store.session_owner("s2") is None
        assert store.get(B).sessions == {}  # type: ignore[union-attr]

    # --- outbox ---------------------------------------------------------------------------------------

    def test_outbox_order_ack_and_after(self, store: BalanceStore) -> None:
        provision(store, A)
        provision(store, B)
        for i in range(5):
            credit(store, A if i % 2 else B, 100 + i, f"t{i}")
        entries = store.outbox()
        ids = [e.event["event_id"] for e in entries]
        # each subscriber's events in commit order; how the two subscribers' events interleave is
        # the store's business (a partitioned store has no global commit order)
        assert [i for i in ids if i.startswith(A)] == [f"{A}#provisioned", f"{A}#topup#t1", f"{A}#topup#t3"]
        assert [i for i in ids if i.startswith(B)] == [
            f"{B}#provisioned",
            f"{B}#topup#t0",
            f"{B}#topup#t2",
            f"{B}#topup#t4",
        ]
        seqs = [e.seq for e in entries]
        assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), seqs
        assert all(isinstance(e, OutboxEntry) for e in entries)
        assert store.outbox(limit=2) == entries[:2]
        assert store.outbox(limit=0) == []
        assert store.outbox(after=entries[2].seq) == entries[3:]
        assert store.outbox(limit=2, after=entries[2].seq) == entries[3:5]
        assert store.outbox(after=entries[-1].seq) == []

        assert store.outbox_size() == len(entries)
        store.ack([entries[0].seq, entries[1].seq])
        assert store.outbox() == entries[2:]
        assert store.outbox_size() == len(entries) - 2
        store.ack([entries[0].seq])  # acknowledging again changes nothing
        store.ack([])
        assert store.outbox() == entries[2:]
        store.ack(e.seq for e in entries[2:5])
        assert store.outbox() == entries[5:]
        store.ack([*(e.seq for e in entries[5:]), entries[-1].seq + 1_000_003])  # unknown: ignored
        assert store.outbox() == []
        assert store.outbox_size() == 0

        credit(store, A, 1, "t5")
        (new,) = store.outbox()
        assert new.seq not in seqs, "a sequence number is never reused"
        assert new.seq > max(e.seq for e in entries if e.event["msisdn"] == A)
        assert new.event["event_id"] == f"{A}#topup#t5"

    def test_ack_takes_exactly_the_given_entries(self, store: BalanceStore) -> None:
        """Not "everything up to the highest seq": a relay that read the outbox just before an
        event with a smaller seq was committed (on another partition) must not take it along."""
        for m in (A, B, C):
            provision(store, m)
        for i in range(6):
            credit(store, (A, B, C)[i % 3], 1 + i, f"x{i}")
        entries = store.outbox()
        assert len(entries) == 9
        store.ack(e.seq for e in entries[1::2])  # every other one: gaps below the highest acknowledged
        assert store.outbox() == entries[0::2]
        assert store.outbox_size() == len(entries[0::2])
        assert store.outbox(after=entries[3].seq) == entries[4::2]
        store.ack([entries[-1].seq])
        assert store.outbox() == entries[0:-1:2]
        store.ack(e.seq for e in entries)
        assert store.outbox() == []

    def test_a_relay_beside_committing_threads_loses_nothing(self, store: BalanceStore) -> None:
        """What the relay does (read a batch, publish it, ack it) while commits go on everywhere:
        every event is published exactly once, each subscriber's in commit order."""
        subscribers = [f"53200001{i:02d}" for i in range(8)]
        for m in subscribers:
            provision(store, m, None)
        writers, per_writer = 4, 60
        published: list[dict[str, Any]] = []
        writing = threading.Event()
        writing.set()
        errors: list[BaseException] = []

        def relay() -> None:
            try:
                while True:
                    last_pass = not writing.is_set()  # read before the outbox: one pass after the writers
                    entries = store.outbox(limit=7)
                    published.extend(e.event for e in entries)
                    store.ack(e.seq for e in entries)
                    if last_pass and not entries:
                        return
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def write(w: int) -> None:
            try:
                for i in range(per_writer):
                    credit(store, subscribers[(w + i) % len(subscribers)], 1, f"w{w}-{i}")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        relayer = threading.Thread(target=relay)
        relayer.start()
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writing.clear()
        relayer.join(timeout=60)
        assert not relayer.is_alive() and errors == []
        expected = {f"{m}#provisioned" for m in subscribers} | {
            f"{subscribers[(w + i) % len(subscribers)]}#topup#w{w}-{i}"
            for w in range(writers)
            for i in range(per_writer)
        }
        ids = [e["event_id"] for e in published]
        assert len(ids) == len(set(ids)) and set(ids) == expected
        for m in subscribers:
            wallets = [e["wallet_after"] for e in published if e["msisdn"] == m]
            assert wallets == sorted(wallets) and len(set(wallets)) == len(wallets), m
        assert store.outbox() == [] and store.outbox_size() == 0

    def test_outbox_events_are_the_codec_form(self, store: BalanceStore) -> None:
        account = provision(store, A)
        outcome = charge(account, CATALOGUE, sms(A, "e1"), NOW)
        new = outcome.account
        assert new is not None
        store.transact(A, lambda acc: (None, Commit(new, outcome.changed_sessions, (), outcome.events)))
        last = store.outbox()[-1]
        assert last.event == event_to_dict(outcome.events[0])
        assert last.event["type"] == "usage" and last.event["money"] == 400

    def test_msisdns(self, store: BalanceStore) -> None:
        assert list(store.msisdns()) == []
        for m in (A, B, C):
            provision(store, m)
        found = set()
        for m in store.msisdns():  # iterating while writing is allowed
            found.add(m)
            credit(store, m, 1, "x")
        assert found == {A, B, C}
        assert sorted(store.msisdns()) == [A, B, C]

    # --- concurrency ----------------------------------------------------------------------------------

    THREADS = 16
    PER_THREAD = 200

    def test_transactions_on_one_subscriber_are_serialised(self, store: BalanceStore) -> None:
        provision(store, A, None)
        start = threading.Barrier(self.THREADS)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                start.wait()
                for i in range(self.PER_THREAD):

                    def fn(account: Account | None, ref: str = f"{t}-{i}") -> tuple[None, Commit]:
                        assert account is not None
                        wallet = account.wallet
                        time.sleep(0)  # invite a race between reading and writing
                        change = top_up(account, 1, ref, POLICY, NOW)
                        assert change.account.wallet == wallet + 1
                        return None, Commit(change.account, events=change.events)

                    store.transact(A, fn)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        total = self.THREADS * self.PER_THREAD
        account = store.get(A)
        assert account is not None
        assert account.wallet == 10_000 + total
        assert account.revision == 1 + total
        entries = store.outbox(limit=total + 10)
        assert len(entries) == total + 1
        assert len({e.event["event_id"] for e in entries}) == total + 1
        seqs = [e.seq for e in entries]
        assert seqs == sorted(set(seqs))
        # the events are in commit order: each one's wallet is one more than the one before
        wallets = [e.event["wallet_after"] for e in entries[1:]]
        assert wallets == list(range(10_001, 10_001 + total))

    def test_transactions_on_different_subscribers_run_side_by_side(self, store: BalanceStore) -> None:
        for m in (A, B):
            provision(store, m, None)
        inside = threading.Barrier(2, timeout=10)

        def fn(account: Account | None) -> tuple[None, Commit]:
            assert account is not None
            inside.wait()  # both transactions must be inside at once, or this times out
            change = top_up(account, 1, "p", POLICY, NOW)
            return None, Commit(change.account, events=change.events)

        threads = [threading.Thread(target=store.transact, args=(m, fn)) for m in (A, B)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not inside.broken
        assert store.get(A).wallet == store.get(B).wallet == 10_001  # type: ignore[union-attr]

    def test_outbox_parts_split_it_by_subscriber(self, store: BalanceStore) -> None:
        """What the relay walks: every event in exactly one part, each subscriber's all in one,
        in seq order there; a part's acknowledgement takes its events and nothing of another."""
        numbers = [f"53200001{i:02d}" for i in range(12)]
        for n in numbers:
            provision(store, n)
            credit(store, n, 100, f"t{n}")
        everything = store.outbox(limit=1_000)
        parts = store.outbox_parts()
        assert parts and len(set(parts)) == len(parts)
        reads = {p: store.outbox(limit=1_000, part=p) for p in parts}
        assert sorted((e for r in reads.values() for e in r), key=lambda e: e.seq) == sorted(
            everything, key=lambda e: e.seq
        )
        home: dict[str, str] = {}
        for p, entries in reads.items():
            assert [e.seq for e in entries] == sorted(e.seq for e in entries)
            for e in entries:
                assert home.setdefault(e.event["msisdn"], p) == p
        assert set(home) == set(numbers)
        first, *others = parts
        assert store.outbox(limit=1, part=first) == reads[first][:1]
        for other in others:  # a part's seqs acknowledged as another's: not found there
            store.ack((e.seq for e in reads[first]), part=other)
        assert store.outbox(limit=1_000, part=first) == reads[first]
        store.ack((e.seq for e in reads[first][:3]), part=first)
        assert store.outbox(limit=1_000, part=first) == reads[first][3:]
        assert store.outbox_size() == len(everything) - 3

        async def main() -> None:
            assert await store.outbox_parts_async() == parts
            for p in parts:
                assert await store.outbox_async(limit=1_000, part=p) == store.outbox(limit=1_000, part=p)
                await store.ack_async((e.seq for e in await store.outbox_async(limit=1_000, part=p)), part=p)
            assert await store.outbox_async() == []

        on_a_loop(store, main)
        assert store.outbox_size() == 0

    # --- on an event loop: the *_async face -----------------------------------------------------------

    def test_the_async_face_sees_what_the_blocking_one_sees(self, store: BalanceStore) -> None:
        provision(store, A)
        provision(store, B)

        async def main() -> None:
            answer = await store.transact_async(A, charging(voice(A, "s1", RequestType.INITIAL, 0), NOW))
            assert answer.result_code is ResultCode.SUCCESS
            assert normalised(await store.get_async(A)) == normalised(store.get(A))
            assert await store.get_async(C) is None
            assert await store.session_owner_async("s1") == A
            assert await store.session_owner_async("nope") is None
            entries = await store.outbox_async(limit=100)
            assert [(e.seq, e.event) for e in entries] == [(e.seq, e.event) for e in store.outbox(limit=100)]
            assert len(entries) == 2  # the two sign-ups
            assert await store.outbox_async(limit=1, after=entries[0].seq) == entries[1:2]
            assert await store.outbox_size_async() == 2
            await store.ack_async([entries[0].seq])
            assert [e.seq for e in await store.outbox_async()] == [entries[1].seq]

            def refuse(account: Account | None) -> tuple[None, Commit]:
                raise ValueError("refused")

            before = state_of(store)
            with pytest.raises(ValueError, match="refused"):
                await store.transact_async(A, refuse)
            assert state_of(store) == before

        on_a_loop(store, main)

    def test_coroutines_and_threads_on_one_subscriber_are_serialised(self, store: BalanceStore) -> None:
        """Tasks on the loop (the OCS) and threads (tools, admin) change one account at once: no
        update lost, the events in commit order."""
        provision(store, A, None)
        tasks, per_task, per_thread = 32, 10, 100
        errors: list[BaseException] = []

        def work_in_a_thread() -> None:
            try:
                for i in range(per_thread):
                    store.transact(A, topping_up(f"t-{i}"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        async def main() -> None:
            thread = threading.Thread(target=work_in_a_thread)
            thread.start()

            async def work(t: int) -> None:
                for i in range(per_task):
                    await store.transact_async(A, topping_up(f"c{t}-{i}"))

            await asyncio.gather(*(work(t) for t in range(tasks)))
            await asyncio.to_thread(thread.join)

        on_a_loop(store, main)
        assert errors == []
        total = tasks * per_task + per_thread
        account = store.get(A)
        assert account is not None
        assert (account.wallet, account.revision) == (10_000 + total, 1 + total)
        wallets = [e.event["wallet_after"] for e in store.outbox(limit=total + 10)][1:]
        assert wallets == list(range(10_001, 10_001 + total))


class DurableBalanceStoreContract(BalanceStoreContract):
    """The contract plus durability, for adapters that keep their data (all but in-memory ones)."""

    def reopen(self, store: BalanceStore, tmp_path: Path) -> BalanceStore:
        """Close `store` and open a new one over the same data."""
        raise NotImplementedError

    def reopened(self, store: BalanceStore) -> BalanceStore:
        again = self.reopen(store, self._tmp_path)
        self._opened.append(again)
        return again

    def failing_durable_writes(
        self, store: BalanceStore, before_failing: Callable[[], None]
    ) -> AbstractContextManager[None]:
        """While inside: every write that would make a commit or an acknowledgement durable (the
        journal write, the procedure call) first calls `before_failing`, then fails as a full disk
        or a failing server would, so that the store raises a StoreError."""
        raise NotImplementedError

    # --- durability -----------------------------------------------------------------------------------

    def test_reopen_shows_the_same_accounts_outbox_and_acks(self, store: BalanceStore) -> None:
        history = busy_history(store)
        entries = store.outbox()
        store.ack(e.seq for e in entries[:4])
        before = state_of(store)
        assert "a-old" not in before["accounts"][A]["sessions"]
        assert len(before["accounts"][A]["sessions"]["a-long"][5]) == 4  # the last few answers only

        again = self.reopened(store)
        assert state_of(again) == before
        assert [e.seq for e in again.outbox()] == [e.seq for e in entries[4:]]

        # retransmissions get the answers the first store gave, and change nothing
        stored = 0
        for req, answer in history:
            account = again.get(req.msisdn)
            assert account is not None
            session = account.sessions.get(req.session_id)
            if session is None or kept_answer_of(session, req.request_number) is None:
                continue
            stored += 1
            assert charge_in(again, req, NOW + 2_000) == answer
        assert stored >= 10
        assert state_of(again) == before

        # it carries on: new events follow the old ones, acknowledged ones stay acknowledged
        charge_in(again, voice(A, "a-open", RequestType.UPDATE, 1, used=60), NOW + 900)
        after = again.outbox()
        old = {e.seq for e in entries[4:]}
        (new,) = [e for e in after if e.seq not in old]
        assert [e.seq for e in after if e.seq in old] == [e.seq for e in entries[4:]]
        assert new.seq > max(e.seq for e in entries if e.event["msisdn"] == A)
        expected = state_of(again)  # before `again` is closed
        third = self.reopened(again)
        assert state_of(third) == expected

    def test_a_write_that_cannot_be_made_durable_changes_nothing(self, store: BalanceStore) -> None:
        """A commit is visible only once it is durable: when its write fails, readers never see it
        (not even while the write is under way), and the account, its sessions, the outbox and the
        next seq are as if it had never been tried. The same for an acknowledgement."""
        busy_history(store)
        store.ack(e.seq for e in store.outbox()[:3])
        before = state_of(store)
        seqs_before = {e.seq for e in store.outbox(limit=1_000_000)}
        b_wallet = store.get(B).wallet  # type: ignore[union-attr]
        d = "5320000004"

        def drop_b_done(account: Account | None) -> tuple[None, Commit]:
            assert account is not None
            without = account.copy()
            del without.sessions["b-done"]
            return None, Commit(without, (), ("b-done",), ())

        attempts: dict[str, Callable[[], object]] = {
            "a charge with events": lambda: charge_in(
                store, voice(A, "a-open", RequestType.UPDATE, 1, used=60), NOW + 900
            ),
            "a new session": lambda: charge_in(store, voice(C, "c-new", RequestType.INITIAL, 0), NOW + 900),
            "a top-up": lambda: credit(store, B, 500, "lost-top-up", NOW + 900),
            "a new subscriber": lambda: provision(store, d, "ANKARA", NOW + 900),
            "a removed session": lambda: store.transact(B, drop_b_done),
            "an acknowledgement": lambda: store.ack(e.seq for e in store.outbox()[:2]),
        }
        seen_while_writing: list[tuple[str, Any]] = []
        for name, attempt in attempts.items():

            def look(name: str = name) -> None:
                # what a reader sees while the write is under way (this thread: the embedded
                # store's outbox waits for the write, accounts and sessions do not)
                accounts = {m: normalised(store.get(m)) for m in sorted(store.msisdns())}
                owners = {sid: store.session_owner(sid) for sid in [*before["owners"], "c-new"]}
                seen_while_writing.append((name, (accounts, owners)))

            with self.failing_durable_writes(store, look), pytest.raises(StoreError):
                attempt()
            assert state_of(store) == before, f"{name}: visible although its write failed"
            assert store.get(d) is None and store.session_owner("c-new") is None, name
        expected = (before["accounts"], {**before["owners"], "c-new": None})
        assert {name for name, _ in seen_while_writing} == set(attempts)  # a write may be tried twice
        for name, seen in seen_while_writing:
            assert seen == expected, f"{name}: visible while its write was under way"

        # nothing is left locked or half-done: the same writes now succeed, once each
        for attempt in attempts.values():
            attempt()
        after = state_of(store)
        assert store.get(B).wallet == b_wallet + 500  # type: ignore[union-attr]
        assert after["accounts"][d] is not None and after["owners"]["c-new"] == C
        assert "b-done" not in after["accounts"][B]["sessions"]
        new = [e for e in store.outbox(limit=1_000_000) if e.seq not in seqs_before]
        assert [e.event["event_id"] for e in new if e.event["msisdn"] == B] == [f"{B}#topup#lost-top-up"]
        for e in new:  # fresh seqs, after every earlier one of the same subscriber
            older = [s for s, ev in before["outbox"] if ev["msisdn"] == e.event["msisdn"]]
            assert e.seq > max(older, default=0), e
        again = self.reopened(store)
        assert state_of(again) == after

    def test_reopen_after_acknowledging_everything(self, store: BalanceStore) -> None:
        provision(store, A)
        credit(store, A, 5, "x")
        used = {e.seq for e in store.outbox()}
        store.ack(used)
        before = state_of(store)
        again = self.reopened(store)
        assert again.outbox() == []
        assert state_of(again) == before
        credit(again, A, 5, "y")
        (entry,) = again.outbox()
        assert entry.seq > max(used), "a sequence number is never reused"

    def test_reopen_after_acknowledging_out_of_order(self, store: BalanceStore) -> None:
        for m in (A, B):
            provision(store, m)
        for i in range(5):
            credit(store, (A, B)[i % 2], 1 + i, f"o{i}")
        entries = store.outbox()
        store.ack(e.seq for e in entries[1::2])
        before = state_of(store)
        again = self.reopened(store)
        assert state_of(again) == before
        assert again.outbox() == entries[0::2]
        again.ack(e.seq for e in entries[0::2])
        assert self.reopened(again).outbox() == []
