"""Rebuild the real-time balance store from the system of record (DESIGN invariant 4).

A subscriber's account is rebuilt from what the record knows: the wallet is every ledger
movement minus every usage debit; each bucket is its grant minus what usage took from it; the
status is the subscriber's. Live sessions and their reservations are not rebuilt — they are
transient by nature; their next request is answered 5002 and the network starts a new session.
What the record cannot know is what had not reached it: events still in a lost store's outbox.
Run it with the SF caught up (lag 0) for balances to come back exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cellcelly.domain.account import Account, Bucket, Status
from cellcelly.domain.catalogue import ChargingPolicy
from cellcelly.domain.charging import next_sweep
from cellcelly.domain.units import Service
from cellcelly.ports.balance_store import BalanceStore, Commit
from cellcelly.ports.records import SubscriberRecord, SystemOfRecord

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    subscribers: int = 0
    rebuilt: int = 0
    unchanged: int = 0


Balances = tuple[str, int, dict[str, int]]  # status, wallet (kuruş), bucket id -> remaining


@dataclass
class Audit:
    """What `audit` found: every subscriber's balances in the record against the store's."""

    subscribers: int = 0
    outbox: int = 0  # events not yet relayed: while any wait, a difference may be one in flight
    differ: dict[str, tuple[Balances, Balances | None]] = field(default_factory=dict)  # record, store

    @property
    def settled_and_equal(self) -> bool:
        return self.outbox == 0 and not self.differ


def balances(account: Account) -> Balances:
    return account.status.value, account.wallet, {k: b.remaining for k, b in account.buckets.items()}


def _every_subscriber(records: SystemOfRecord, page: int) -> Iterator[SubscriberRecord]:
    offset = 0
    while subscribers := records.list_subscribers(limit=page, offset=offset):
        offset += len(subscribers)
        yield from subscribers


def audit(
    store: BalanceStore, records: SystemOfRecord, clock: Callable[[], float] = time.time, page: int = 500
) -> Audit:
    """Compare, change nothing: safe while the stack runs. Equal balances with an empty outbox mean
    every debit reached the record exactly once (a lost one leaves the record richer, a doubled one
    poorer than the store)."""
    found = Audit(outbox=store.outbox_size())
    for sub in _every_subscriber(records, page):
        found.subscribers += 1
        want = balances(account_from_record(records, sub.msisdn, sub.status, int(clock())))
        current = store.get(sub.msisdn)
        have = balances(current) if current is not None else None
        if have != want:
            found.differ[sub.msisdn] = (want, have)
    return found


def account_from_record(records: SystemOfRecord, msisdn: str, status: str, now: int) -> Account:
    used = records.bucket_consumption(msisdn)
    buckets = {
        b.id: Bucket(
            b.id,
            Service(b.service),
            b.package,
            b.units,
            b.units - used.get(b.id, 0),
            b.valid_from,
            b.valid_until,
        )
        for b in records.buckets_for(msisdn)
        if b.valid_until > now
    }
    return Account(msisdn, Status(status or "active"), records.wallet_balance(msisdn), buckets)


def reconcile(
    store: BalanceStore,
    records: SystemOfRecord,
    policy: ChargingPolicy,
    clock: Callable[[], float] = time.time,
    page: int = 500,
) -> ReconcileReport:
    report = ReconcileReport()
    for sub in _every_subscriber(records, page):
        report.subscribers += 1
        now = int(clock())
        rebuilt = account_from_record(records, sub.msisdn, sub.status, now)

        def apply(
            current: Account | None, rebuilt: Account = rebuilt, now: int = now
        ) -> tuple[bool, Commit | None]:
            if current is not None and balances(current) == balances(rebuilt):
                return False, None
            if current is not None:
                rebuilt.revision = current.revision + 1
                # the record cannot know them: a voucher's top-up made here (so in the record
                # once the SF caught up) whose credit is not yet durable must stay held
                rebuilt.held_references = current.held_references
            rebuilt.next_sweep = next_sweep(rebuilt, policy, now)
            return True, Commit(rebuilt, removed_sessions=tuple(current.sessions) if current else ())

        if store.transact(sub.msisdn, apply):
            report.rebuilt += 1
        else:
            report.unchanged += 1
    log.info("reconciled", extra={"subscribers": report.subscribers, "rebuilt": report.rebuilt})
    return report
