"""A voucher credits once, ever (issue 12 §1), on a real system of record (SQLite and PostgreSQL).

The bug: "already applied?" was decided from the account's last 32 top-up references, so a used
voucher redeemed again after 32 other top-ups was credited a second time in the balance store,
while the record (the SF drops the replayed ledger event by its id) kept it once. These tests
check the answer the subscriber gets *and* that the balance store and the record agree.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from mw_harness import Harness, harness
from sqlalchemy import select

from cellcelly.adapters.sql.schema import vouchers, wallet_ledger
from cellcelly.application.selfcare import VoucherUsed
from cellcelly.codec import event_from_dict
from cellcelly.deploy.backends import Backends
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.domain.selfcare_rules import normalise_voucher
from cellcelly.ports.records import SubscriberRecord
from cellcelly.security import sha256_hex

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

A, B = "5321112233", "5339998877"


@pytest.fixture
async def mw(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    async with harness(tmp_path / "data", db_url, admin_token="a" * 40) as h:
        yield h


def open_subscriber(components: Backends, msisdn: str) -> None:
    components.accounts.open(SubscriberRecord(msisdn, "Ayşe", "Çelik", f"{msisdn}@example.com"))


def sync_record(components: Backends) -> None:
    """What the SF does with ledger events: outbox -> system of record (idempotent by event id)."""
    store = components.store
    while entries := store.outbox(limit=1000):
        events = [event_from_dict(orjson.loads(orjson.dumps(x.event))) for x in entries]
        components.records.apply_ledger([e for e in events if isinstance(e, LedgerEvent)])
        store.ack(x.seq for x in entries)


def wallet(components: Backends, msisdn: str) -> int:
    account = components.store.get(msisdn)
    assert account is not None
    return account.wallet


def assert_store_agrees_with_record(components: Backends, *msisdns: str) -> None:
    sync_record(components)
    for msisdn in msisdns:
        assert wallet(components, msisdn) == components.records.wallet_balance(msisdn), msisdn


def voucher_credits(components: Backends, code_hash: str) -> list[str]:
    """Who the record says this voucher was credited to (one ledger row per credit)."""
    engine = components.records.engine  # type: ignore[attr-defined]
    reference = f"voucher:{code_hash[:32]}"
    with engine.connect() as conn:
        rows = conn.execute(select(wallet_ledger.c.msisdn).where(wallet_ledger.c.reference == reference))
        return [r[0] for r in rows]


def code_hash_of(code: str) -> str:
    return sha256_hex(normalise_voucher(code))


# --- the reproduction -------------------------------------------------------------------


async def test_used_voucher_after_32_top_ups_is_refused_through_selfcare(mw: Harness) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [big] = await selfcare.create_vouchers(10_000, 1)
    small = await selfcare.create_vouchers(1, 32)
    before = wallet(components, A)
    await selfcare.redeem_voucher(A, big)
    for code in small:
        await selfcare.redeem_voucher(A, code)
    assert wallet(components, A) == before + 10_000 + 32
    with pytest.raises(VoucherUsed):
        await selfcare.redeem_voucher(A, big)
    assert wallet(components, A) == before + 10_000 + 32
    assert_store_agrees_with_record(components, A)
    assert voucher_credits(components, code_hash_of(big)) == [A]


async def test_used_voucher_after_32_top_ups_is_refused_through_the_api(mw: Harness) -> None:
    admin = {"Authorization": "Bearer " + "a" * 40}
    big = await mw.client.post("/api/v1/admin/vouchers", headers=admin, json={"amount": "100", "count": 1})
    small = await mw.client.post(
        "/api/v1/admin/vouchers", headers=admin, json={"amount": "0.01", "count": 32}
    )
    assert big.status_code == small.status_code == 201
    first = big.json()["items"][0]["code"]
    auth = await mw.signed_up(A)
    topped = await mw.client.post("/api/v1/me/topup", headers=auth, json={"voucher": first})
    assert topped.status_code == 200
    for item in small.json()["items"]:
        ok = await mw.client.post("/api/v1/me/topup", headers=auth, json={"voucher": item["code"]})
        assert ok.status_code == 200, ok.text
    balance = (await mw.client.get("/api/v1/me/balance", headers=auth)).json()["wallet"]["kurus"]
    again = await mw.client.post("/api/v1/me/topup", headers=auth, json={"voucher": first})
    assert again.status_code == 409 and again.json()["cause"] == "VOUCHER_USED", again.text
    assert again.headers["content-type"] == "application/problem+json"
    after = (await mw.client.get("/api/v1/me/balance", headers=auth)).json()["wallet"]["kurus"]
    assert after == balance
    assert_store_agrees_with_record(mw.components, A)


async def test_the_voucher_row_says_when_it_was_credited(mw: Harness) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [code] = await selfcare.create_vouchers(500, 1)
    await selfcare.redeem_voucher(A, code)
    engine = components.records.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        row = conn.execute(select(vouchers).where(vouchers.c.code_hash == code_hash_of(code))).one()
    assert row.used_by == A and row.credited_at is not None
    # the held reference is gone once the credit is durable: nothing is left to grow the account
    account = components.store.get(A)
    assert account is not None and account.held_references == ()


# --- a crash between the steps ------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying at this point (nothing after it runs)."""


async def test_crash_after_the_claim_is_finished_by_a_retry_at_any_later_time(mw: Harness) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [code] = await selfcare.create_vouchers(700, 1)
    others = await selfcare.create_vouchers(1, 40)
    before = wallet(components, A)
    credit = selfcare.credentials.credit_voucher
    selfcare.credentials.credit_voucher = _raise(Crash)  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await selfcare.redeem_voucher(A, code)
    selfcare.credentials.credit_voucher = credit  # type: ignore[method-assign]
    for other in others:  # more top-ups than any window of references
        await selfcare.redeem_voucher(A, other)
    mw.clock.advance(30 * 86_400)  # and long after: no time window decides it
    await selfcare.redeem_voucher(A, code)
    assert wallet(components, A) == before + 700 + 40
    with pytest.raises(VoucherUsed):
        await selfcare.redeem_voucher(A, code)
    assert_store_agrees_with_record(components, A)
    assert voucher_credits(components, code_hash_of(code)) == [A]


async def redeem_crashing_after_the_top_up(mw: Harness, msisdn: str, code: str) -> None:
    """A redemption whose process dies after the balance store's top-up, before the record's commit."""
    accounts = mw.components.accounts
    top_up = accounts.top_up

    def top_up_then_crash(*args: Any, **kw: Any) -> Any:
        top_up(*args, **kw)
        raise Crash

    accounts.top_up = top_up_then_crash  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            await mw.selfcare.redeem_voucher(msisdn, code)
    finally:
        accounts.top_up = top_up  # type: ignore[method-assign]


async def test_crash_after_the_top_up_before_the_commit_is_not_credited_twice(mw: Harness) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [code] = await selfcare.create_vouchers(900, 1)
    others = await selfcare.create_vouchers(1, 40)
    before = wallet(components, A)
    await redeem_crashing_after_the_top_up(mw, A, code)
    assert wallet(components, A) == before + 900  # the store has it; the voucher is not credited
    assert_store_agrees_with_record(components, A)
    for other in others:
        await selfcare.redeem_voucher(A, other)
    mw.clock.advance(30 * 86_400)
    await selfcare.redeem_voucher(A, code)  # finishes: marks it credited, credits nothing again
    assert wallet(components, A) == before + 900 + 40
    with pytest.raises(VoucherUsed):
        await selfcare.redeem_voucher(A, code)
    assert_store_agrees_with_record(components, A)
    assert voucher_credits(components, code_hash_of(code)) == [A]


async def test_crash_after_the_commit_leaves_a_held_reference_that_the_next_try_releases(
    mw: Harness,
) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [code] = await selfcare.create_vouchers(300, 1)
    before = wallet(components, A)
    release = components.accounts.release_reference
    components.accounts.release_reference = _raise(Crash)  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await selfcare.redeem_voucher(A, code)
    components.accounts.release_reference = release  # type: ignore[method-assign]
    account = components.store.get(A)
    assert account is not None and len(account.held_references) == 1
    with pytest.raises(VoucherUsed):
        await selfcare.redeem_voucher(A, code)
    account = components.store.get(A)
    assert account is not None and account.held_references == ()
    assert account.wallet == before + 300
    assert_store_agrees_with_record(components, A)


def _raise(exc: type[Exception]) -> Any:
    def fail(*_: Any, **__: Any) -> Any:
        raise exc

    return fail


# --- concurrency --------------------------------------------------------------------------------


def _race(mw: Harness, who: list[str], code: str) -> list[str]:
    """Redeem `code` once per entry of `who`, each in its own thread and event loop, all at once."""
    barrier = threading.Barrier(len(who))
    outcomes: list[str] = [""] * len(who)

    def run(i: int, msisdn: str) -> None:
        async def go() -> None:
            barrier.wait()
            try:
                await mw.selfcare.redeem_voucher(msisdn, code)
                outcomes[i] = "ok"
            except VoucherUsed:
                outcomes[i] = "used"

        asyncio.run(go())

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate(who)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


@pytest.mark.parametrize("rounds", [8])
async def test_parallel_redemptions_of_one_code_credit_once(mw: Harness, rounds: int) -> None:
    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    open_subscriber(components, B)
    selfcare._vouchers.limit = 10**9  # many 409s on purpose: not a guessing attack
    codes = await selfcare.create_vouchers(1_000, rounds * 2)
    start = {A: wallet(components, A), B: wallet(components, B)}
    credited = {A: 0, B: 0}
    for i in range(rounds):
        same = await asyncio.to_thread(_race, mw, [A, A, A, A], codes[2 * i])
        assert sorted(same) == ["ok", "used", "used", "used"], same
        credited[A] += 1_000
        two = await asyncio.to_thread(_race, mw, [A, B, A, B], codes[2 * i + 1])
        assert sorted(two) == ["ok", "used", "used", "used"], two
        [winner] = voucher_credits(components, code_hash_of(codes[2 * i + 1])) or _synced(
            components, codes[2 * i + 1]
        )
        credited[winner] += 1_000
    for msisdn in (A, B):
        assert wallet(components, msisdn) == start[msisdn] + credited[msisdn]
    assert_store_agrees_with_record(components, A, B)
    for code in codes:
        assert len(voucher_credits(components, code_hash_of(code))) == 1


def _synced(components: Backends, code: str) -> list[str]:
    sync_record(components)
    return voucher_credits(components, code_hash_of(code))


# --- migration 0007 -----------------------------------------------------------------------------


def test_migration_0007_counts_vouchers_used_before_it_as_credited(db_url: str) -> None:
    """Left NULL, a voucher used under the old code would look like a claim cut short, and its
    claimer's next try would credit it again."""
    from sqlalchemy import create_engine, insert
    from sqlalchemy.pool import NullPool

    from cellcelly.adapters.sql import downgrade, migrate

    migrate(db_url, "0006")
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        made = {"amount": 100, "batch": "b", "created_at": 1_800_000_000}
        with engine.begin() as conn:  # the columns 0006 has (no credited_at yet)
            conn.execute(
                insert(vouchers), {"code_hash": "u" * 64, "used_by": A, "used_at": 1_800_000_100} | made
            )
            conn.execute(insert(vouchers), {"code_hash": "f" * 64, "used_by": None, "used_at": None} | made)
        migrate(db_url, "0007")
        with engine.connect() as conn:
            rows = {r.code_hash: r for r in conn.execute(select(vouchers))}
        assert rows["u" * 64].credited_at == 1_800_000_100  # credited when it was used
        assert rows["f" * 64].credited_at is None and rows["f" * 64].used_by is None
        downgrade(db_url, "0006")
        with engine.connect() as conn:
            columns = conn.exec_driver_sql("SELECT * FROM vouchers").keys()
        assert "credited_at" not in columns
    finally:
        engine.dispose()


async def test_reconcile_keeps_a_held_reference(mw: Harness) -> None:
    """An account rebuilt from the record in place keeps what the record cannot know: the voucher
    top-up it made whose credit is not durable yet, so the retry does not credit it again."""
    from cellcelly.application.reconcile import reconcile
    from cellcelly.ports.balance_store import Commit

    selfcare, components = mw.selfcare, mw.components
    open_subscriber(components, A)
    [code] = await selfcare.create_vouchers(900, 1)
    before = wallet(components, A)
    await redeem_crashing_after_the_top_up(mw, A, code)
    sync_record(components)

    def drift(account: Any) -> tuple[None, Commit]:  # the store off the record: reconcile rebuilds it
        changed = account.copy()
        changed.wallet += 12_345
        return None, Commit(changed)

    components.store.transact(A, drift)
    report = reconcile(components.store, components.records, components.catalogue.current.policy)
    assert report.rebuilt == 1
    assert wallet(components, A) == before + 900
    await selfcare.redeem_voucher(A, code)
    assert wallet(components, A) == before + 900
    assert_store_agrees_with_record(components, A)
    assert voucher_credits(components, code_hash_of(code)) == [A]
