"""Invariant 4: the real-time balance store can be rebuilt from the system of record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.application.reconcile import audit, reconcile
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.codec import event_from_dict
from cellcelly.domain.account import Account, Status
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage, UsageEvent
from cellcelly.domain.units import Service
from cellcelly.ports.balance_store import Commit
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.sf.sync import SyncFunction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SUBSCRIBERS = [f"53400000{i:02d}" for i in range(12)]


def balances(account: Account | None) -> tuple[int, str, dict[str, int]]:
    assert account is not None
    return account.wallet, account.status.value, {k: b.remaining for k, b in account.buckets.items()}


def traffic(charging: ChargingService, start: int, count: int) -> None:
    for i in range(start, start + count):
        msisdn = SUBSCRIBERS[i % len(SUBSCRIBERS)]
        if i % 4 == 3:  # an SMS abroad, paid from the wallet
            charging.charge(
                ChargeRequest(
                    f"r{i}",
                    RequestType.EVENT,
                    0,
                    msisdn,
                    (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),),
                )
            )
            continue
        dest = "905551112233" if i % 2 else "4930123456"  # from the package, or from the wallet
        charging.charge(
            ChargeRequest(
                f"r{i}", RequestType.INITIAL, 0, msisdn, (ServiceUsage(1, Service.VOICE, 120, 0, dest),)
            )
        )
        charging.charge(
            ChargeRequest(
                f"r{i}",
                RequestType.TERMINATE,
                1,
                msisdn,
                (ServiceUsage(1, Service.VOICE, 0, 61 + i % 50, dest),),
            )
        )


def opened(
    tmp_path: Path, records: SqlRecords
) -> tuple[CatalogueHolder, EmbeddedBalanceStore, AccountService]:
    """Every subscriber of SUBSCRIBERS open on the ANKARA package, in a store of its own."""
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    for msisdn in SUBSCRIBERS:
        accounts.open(SubscriberRecord(msisdn, "İpek", "Çelik", f"{msisdn}@example.com", "active", "ANKARA"))
    return catalogue, store, accounts


async def test_balances_come_back_exactly_after_the_store_is_wiped_mid_traffic(
    tmp_path: Path, records: SqlRecords
) -> None:
    catalogue, store, accounts = opened(tmp_path, records)
    accounts.top_up(SUBSCRIBERS[0], 2_500, "v-1")
    accounts.buy_package(SUBSCRIBERS[1], "BURSA", "p-1")
    accounts.set_status(SUBSCRIBERS[2], Status.SUSPENDED, "s-1")
    charging = ChargingService(store, catalogue)
    bus = EmbeddedBus(tmp_path / "bus")
    relay, sf = OutboxRelay(store, bus, batch=50), SyncFunction(bus, records)

    traffic(charging, 0, 80)
    # the relay and SF are part way through: some events reached the record, some did not
    await relay.relay_once()
    await sf.sync_once(timeout=0.05)
    traffic(charging, 80, 40)
    while await relay.relay_once():
        pass
    while await sf.sync_once(timeout=0.05):
        pass
    traffic(charging, 120, 20)  # still in the outbox when the store dies
    lost = [event_from_dict(e.event) for e in store.outbox(limit=10**6)]
    assert lost, "the test needs events the record never got"
    before = {m: balances(store.get(m)) for m in SUBSCRIBERS}
    store.close()
    shutil.rmtree(tmp_path / "balances")  # the balance store is gone

    rebuilt = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    report = reconcile(rebuilt, records, catalogue.current.policy)
    assert report.subscribers == len(SUBSCRIBERS) == report.rebuilt
    for msisdn in SUBSCRIBERS:
        wallet, status, buckets = before[msisdn]
        # what the lost events had taken is back; everything the record knew is exact
        for event in lost:
            if isinstance(event, UsageEvent) and event.msisdn == msisdn:
                wallet += event.money
                for bucket_id, units in event.buckets:
                    buckets[bucket_id] += units
        assert balances(rebuilt.get(msisdn)) == (wallet, status, buckets), msisdn

    # a second run changes nothing, and charging goes on on the rebuilt store
    assert reconcile(rebuilt, records, catalogue.current.policy).rebuilt == 0
    again = ChargingService(rebuilt, catalogue)
    traffic(again, 200, 8)
    rebuilt.close()
    await sf.close()


async def test_the_audit_tells_equal_balances_from_events_in_flight_and_from_a_store_gone_wrong(
    tmp_path: Path, records: SqlRecords
) -> None:
    catalogue, store, accounts = opened(tmp_path, records)
    bus = EmbeddedBus(tmp_path / "bus")
    relay, sf = OutboxRelay(store, bus), SyncFunction(bus, records)

    async def settle() -> None:
        while await relay.relay_once():
            pass
        while await sf.sync_once(timeout=0.05):
            pass

    charging = ChargingService(store, catalogue)
    traffic(charging, 0, 40)
    await settle()
    found = audit(store, records)
    assert found.subscribers == len(SUBSCRIBERS) and found.settled_and_equal, found

    traffic(charging, 40, 8)  # in the outbox, not yet in the record
    found = audit(store, records)
    assert found.outbox > 0 and not found.settled_and_equal
    waiting = {event_from_dict(e.event).msisdn for e in store.outbox(limit=10**6)}
    assert waiting and set(found.differ) == waiting
    for msisdn, (record, in_store) in found.differ.items():
        assert in_store is not None and in_store[1] <= record[1], msisdn  # the store has spent more
    await settle()
    assert audit(store, records).settled_and_equal

    # a store that went wrong (a debit it lost): named, with both sides
    victim = SUBSCRIBERS[3]

    def richer(account: Account | None) -> tuple[None, Commit]:
        assert account is not None
        account.wallet += 100
        account.revision += 1
        return None, Commit(account)

    store.transact(victim, richer)
    found = audit(store, records)
    assert found.outbox == 0 and list(found.differ) == [victim]
    record, in_store = found.differ[victim]
    assert in_store is not None and in_store[1] == record[1] + 100
    store.close()
    await sf.close()


def test_cellcelly_reconcile_check_reports_and_exits_by_what_it_found(tmp_path: Path) -> None:
    env = {**os.environ, "CELLCELLY_DATA_DIR": str(tmp_path / "data"), "CELLCELLY_LOG_LEVEL": "WARNING"}

    def cellcelly(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cellcelly.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert cellcelly("seed").returncode == 0
    checked = cellcelly("reconcile", "--check")
    first = json.loads(checked.stdout)
    assert first["subscribers"] == 1
    # the demo's opening events wait in the outbox until a relay runs: not settled yet
    assert checked.returncode == (0 if first["outbox"] == 0 and not first["differ"] else 1), first
    done = cellcelly("reconcile")
    assert done.returncode == 0 and "reconciled 1 subscribers" in done.stdout, done.stderr
    checked = cellcelly("reconcile", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout) == {"subscribers": 1, "outbox": 0, "differ": []}
