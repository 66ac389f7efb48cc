"""Package renewal: a package the subscriber chose to renew is bought again from the wallet when its
period ends, once per period, with a notice after (or one saying the wallet could not pay). The
domain step, the record's bookkeeping (SQLite and PostgreSQL) and the renewer over the embedded
balance store and the record, the record fed from the outbox as the SF would."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.renewal import PackageRenewer
from cellcelly.catalogue_store import CatalogueHolder, parse_catalogue_text
from cellcelly.codec import event_from_dict
from cellcelly.domain.account import DAY
from cellcelly.domain.charging import NotificationEvent
from cellcelly.domain.provisioning import LedgerEvent, buy_package, open_account, renew_package
from cellcelly.notifier.messages import render
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAT = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
ANKARA = CAT.packages["ANKARA"]  # 50 TL, 30 days
T0 = 1_800_000_000
M = "5371234567"


def test_renewing_buys_the_package_again_once_per_period_with_a_notice() -> None:
    acc = open_account(M, CAT, "ANKARA", T0).account  # wallet 100 TL
    ended = T0 + 30 * DAY
    change = renew_package(acc, ANKARA, ended, CAT.policy, ended + 5)
    acc2 = change.account
    assert acc2.wallet == acc.wallet - ANKARA.price
    new = [b for b in acc2.buckets.values() if b.id.startswith(f"renew:ANKARA:{ended}:")]
    assert len(new) == 3 and all(b.valid_until == ended + 5 + 30 * DAY for b in new)
    kinds = [(type(e).__name__, getattr(e, "kind", "")) for e in change.events]
    assert kinds == [("LedgerEvent", "package"), ("NotificationEvent", "package-renewed")]
    again = renew_package(acc2, ANKARA, ended, CAT.policy, ended + 60)
    assert not again.applied and again.account.wallet == acc2.wallet  # the same period: nothing
    subject, text = render(change.events[1], "Ayşe", "Ankara")  # type: ignore[arg-type]
    assert subject == "Ankara paketiniz yenilendi" and "50,00 TL" in text


def test_a_wallet_that_cannot_pay_gets_a_notice_and_nothing_else() -> None:
    acc = open_account(M, CAT, "ANKARA", T0).account
    acc = buy_package(acc, CAT.packages["ANKARA"], "extra", CAT.policy, T0).account  # 50 TL left
    acc = buy_package(acc, CAT.packages["ANKARA"], "extra2", CAT.policy, T0).account  # 0 TL left
    change = renew_package(acc, ANKARA, T0 + 30 * DAY, CAT.policy, T0 + 30 * DAY)
    assert change.account.wallet == 0 and change.account.buckets.keys() == acc.buckets.keys()
    (notice,) = change.events
    assert isinstance(notice, NotificationEvent) and notice.kind == "package-renewal-failed"
    subject, _ = render(notice, "Ayşe", "Ankara")
    assert subject == "Ankara paketiniz yenilenemedi"


def feed_the_record(store: EmbeddedBalanceStore, records: SqlRecords) -> list[NotificationEvent]:
    """What the relay and the SF do: ledger events into the record; the notices are returned."""
    entries = store.outbox()
    events = [event_from_dict(e.event) for e in entries]
    records.apply_ledger([e for e in events if isinstance(e, LedgerEvent)])
    store.ack([e.seq for e in entries])
    return [e for e in events if isinstance(e, NotificationEvent)]


def test_the_renewer_renews_each_chosen_package_once_when_its_period_ends(
    tmp_path: Path, db_url: str
) -> None:
    records = SqlRecords(db_url)
    records.migrate()
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    now = [float(T0)]
    try:
        catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
        accounts = AccountService(store, records, catalogue, clock=lambda: now[0])
        for msisdn in (M, "5371234568", "5371234569"):
            accounts.open(SubscriberRecord(msisdn, "Ayşe", "Yılmaz", "a@example.com", "active", "ANKARA", T0))
        feed_the_record(store, records)
        records.set_renewal(M, "ANKARA", True, T0)
        records.set_renewal(M, "ANKARA", True, T0)  # chosen twice: once
        records.set_renewal("5371234568", "ANKARA", True, T0)
        records.set_renewal("5371234568", "ANKARA", False, T0)  # changed their mind
        assert records.renewals_of(M) == ["ANKARA"] and records.renewals_of("5371234568") == []
        renewer = PackageRenewer(accounts, records, clock=lambda: now[0])
        # the notice before: the notifier's expiry sweep reads who renews
        expiring = records.expiring_packages(T0, T0 + 31 * DAY)
        assert {(e.msisdn, e.renews) for e in expiring} == {
            (M, True),
            ("5371234568", False),
            ("5371234569", False),
        }
        before = NotificationEvent(
            "x", M, "package-renewing", T0, package="ANKARA", valid_until=T0 + 30 * DAY
        )
        assert render(before, "Ayşe", "Ankara")[0] == "Ankara paketiniz yakında yenileniyor"

        now[0] = T0 + 30 * DAY - 60  # not yet ended
        assert renewer.sweep() == 0
        now[0] = T0 + 30 * DAY + 30  # ended half a minute ago
        assert renewer.sweep() == 1
        notices = feed_the_record(store, records)
        assert [(n.msisdn, n.kind) for n in notices] == [(M, "package-renewed")]
        account = store.get(M)
        assert account is not None and account.wallet == 10_000 - ANKARA.price
        assert store.get("5371234568").wallet == 10_000  # type: ignore[union-attr]
        assert renewer.sweep() == 0  # the period is tried: never again
        now[0] = T0 + 60 * DAY + 100  # the renewed period ends too: renewed again from what is left
        assert renewer.sweep() == 1
        notices = feed_the_record(store, records)
        assert [n.kind for n in notices] == ["package-renewed"] and store.get(M).wallet == 0  # type: ignore[union-attr]
        now[0] = T0 + 90 * DAY + 200  # and once more: the wallet is empty
        assert renewer.sweep() == 1
        notices = feed_the_record(store, records)
        assert [n.kind for n in notices] == ["package-renewal-failed"] and store.get(M).wallet == 0  # type: ignore[union-attr]
        assert renewer.sweep() == 0
    finally:
        store.close()
        records.close()


def test_a_period_that_ended_long_ago_is_not_renewed(tmp_path: Path, db_url: str) -> None:
    """A renewal chosen after the package ended more than the window ago buys nothing by itself."""
    records = SqlRecords(db_url)
    records.migrate()
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    try:
        catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
        accounts = AccountService(store, records, catalogue, clock=lambda: T0)
        accounts.open(SubscriberRecord(M, "Ayşe", "Yılmaz", "a@example.com", "active", "ANKARA", T0))
        feed_the_record(store, records)
        records.set_renewal(M, "ANKARA", True, T0)
        late = PackageRenewer(accounts, records, clock=lambda: T0 + 32 * DAY)
        assert late.sweep() == 0 and store.get(M).wallet == 10_000  # type: ignore[union-attr]
    finally:
        store.close()
        records.close()
