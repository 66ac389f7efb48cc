"""Opening accounts and changing them outside charging: top-ups, packages, suspension.

The system of record is written first (it owns the subscriber); the balance store is then
provisioned. Ledger events go through the balance store's outbox like usage does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account, Status
from cellcelly.domain.catalogue import ChargingPolicy, Package
from cellcelly.domain.errors import DomainError
from cellcelly.domain.provisioning import (
    AccountChange,
    buy_package,
    open_account,
    release_reference,
    renew_package,
    set_status,
    top_up,
)
from cellcelly.ports.balance_store import BalanceStore, Commit
from cellcelly.ports.records import SubscriberRecord, SystemOfRecord

log = logging.getLogger(__name__)


class UnknownSubscriber(DomainError):
    """No such MSISDN in the balance store."""


class AccountService:
    def __init__(
        self,
        store: BalanceStore,
        records: SystemOfRecord,
        catalogue: CatalogueHolder,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.records = records
        self.catalogue = catalogue
        self.clock = clock
        # told (kind, msisdn) after a change commits: "opened", "topup", "package", "active"/"suspended"
        self.listeners: list[Callable[[str, str], None]] = []

    def _notify(self, kind: str, msisdn: str) -> None:
        for listener in self.listeners:
            try:
                listener(kind, msisdn)
            except Exception:  # noqa: BLE001 - a listener must never undo a committed change
                log.exception("account listener failed")

    def open(
        self, subscriber: SubscriberRecord, record: Callable[[SubscriberRecord], None] | None = None
    ) -> Account:
        """Record the subscriber (with `record`, e.g. together with a credential; by default
        `records.add_subscriber`) and provision the balance store."""
        if subscriber.package and subscriber.package not in self.catalogue.current.packages:
            raise DomainError(f"unknown package {subscriber.package!r}")
        (record or self.records.add_subscriber)(subscriber)
        account = self.provision(subscriber.msisdn, subscriber.package)
        self._notify("opened", subscriber.msisdn)
        return account

    def provision(self, msisdn: str, package: str) -> Account:
        """Open the balance-store account (initial wallet, package buckets); no-op when it exists."""
        now = int(self.clock())
        catalogue = self.catalogue.current

        def apply(account: Account | None) -> tuple[Account, Commit | None]:
            if account is not None:
                return account, None
            change = open_account(msisdn, catalogue, package or None, now)
            return change.account, Commit(change.account, events=change.events)

        return self.store.transact(msisdn, apply)

    def _change(self, msisdn: str, fn: Callable[[Account, int], AccountChange]) -> Account:
        def apply(account: Account | None) -> tuple[Account, Commit | None]:
            if account is None:
                raise UnknownSubscriber(f"unknown subscriber {msisdn}")
            change = fn(account, int(self.clock()))
            if not change.applied:
                return change.account, None
            return change.account, Commit(change.account, events=change.events)

        return self.store.transact(msisdn, apply)

    def top_up(
        self, msisdn: str, amount: int, reference: str, *, hold: bool = False, notify: bool = True
    ) -> Account:
        """Credit the wallet once per reference (see `domain.provisioning.top_up` for `hold`).
        `notify=False` when called off the event loop: the caller tells the listeners later."""
        policy = self.catalogue.current.policy
        account = self._change(
            msisdn, lambda acc, now: top_up(acc, amount, reference, policy, now, hold=hold)
        )
        if notify:
            self._notify("topup", msisdn)
        return account

    def release_reference(self, msisdn: str, reference: str) -> Account:
        """Drop a held top-up reference once its once-only fact is durable elsewhere."""
        return self._change(msisdn, lambda acc, now: release_reference(acc, reference))

    def notify(self, kind: str, msisdn: str) -> None:
        """Tell the listeners of a change committed earlier (on the event loop's thread)."""
        self._notify(kind, msisdn)

    def buy_package(self, msisdn: str, package_code: str, reference: str) -> Account:
        return self._package_change(
            msisdn,
            package_code,
            lambda acc, package, policy, now: buy_package(acc, package, reference, policy, now),
        )

    def renew_package(self, msisdn: str, package_code: str, ended_at: int) -> Account:
        """The subscriber's chosen renewal of the period that ended at `ended_at` (see
        `domain.provisioning.renew_package`)."""
        return self._package_change(
            msisdn,
            package_code,
            lambda acc, package, policy, now: renew_package(acc, package, ended_at, policy, now),
        )

    def _package_change(
        self,
        msisdn: str,
        package_code: str,
        fn: Callable[[Account, Package, ChargingPolicy, int], AccountChange],
    ) -> Account:
        """`fn` on a package sold in the catalogue in force (a DomainError if none is)."""
        catalogue = self.catalogue.current
        package = catalogue.packages.get(package_code)
        if package is None:
            raise DomainError(f"unknown package {package_code!r}")
        account = self._change(msisdn, lambda acc, now: fn(acc, package, catalogue.policy, now))
        self._notify("package", msisdn)
        return account

    def set_status(self, msisdn: str, status: Status, reference: str) -> Account:
        policy = self.catalogue.current.policy
        account = self._change(msisdn, lambda acc, now: set_status(acc, status, reference, policy, now))
        self.records.set_status(msisdn, status.value)
        self._notify(status.value, msisdn)
        return account
