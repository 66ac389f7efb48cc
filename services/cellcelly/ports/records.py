"""The system of record: the durable, queryable history (Oracle | PostgreSQL | SQLite).

One SQLAlchemy Core adapter (`cellcelly.adapters.sql`) serves all three dialects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.errors import DomainError


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    msisdn: str
    first_name: str
    last_name: str
    email: str
    status: str = "active"
    package: str = ""
    created_at: int = 0  # epoch seconds, UTC


@dataclass(frozen=True, slots=True)
class BucketRecord:
    id: str
    msisdn: str
    package: str
    service: str
    units: int
    valid_from: int
    valid_until: int


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """A subscriber's wallet after one event; newer is a later (as_of, revision), and within one
    commit (same revision) the lower wallet, since a commit's debits come in order (the rule of
    `adapters/sql/usage_rows.newest_snapshots` and of the stored snapshot's upsert)."""

    msisdn: str
    wallet: int
    revision: int
    as_of: int
    event_id: str


@dataclass(frozen=True, slots=True)
class ExpiringPackage:
    msisdn: str
    package: str
    valid_until: int
    renews: bool = False  # the subscriber chose to renew it from the wallet


@dataclass(frozen=True, slots=True)
class CatalogueRecord:
    version: str
    source: str
    activated_at: int


@dataclass(frozen=True, slots=True)
class CatalogueInForce:
    """Which version every OCS is to charge with; `generation` grows on every activation."""

    version: str
    generation: int
    activated_at: int


class CatalogueConflict(DomainError):
    """This version is on record with other content: a new one needs a new version."""


class SubscriberExists(DomainError):
    """A subscriber with this MSISDN is already on record."""


class SystemOfRecord(Protocol):
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""

    def add_subscriber(self, subscriber: SubscriberRecord) -> None:
        """Raises SubscriberExists when the MSISDN is taken."""

    def get_subscriber(self, msisdn: str) -> SubscriberRecord | None: ...

    def list_subscribers(self, limit: int = 100, offset: int = 0) -> list[SubscriberRecord]: ...

    def set_status(self, msisdn: str, status: str) -> None: ...

    def apply_ledger(self, events: Sequence[LedgerEvent]) -> int:
        """Write wallet movements and bucket grants, and keep the balance snapshot (see
        `BalanceSnapshot`) in the same transaction; idempotent by event id. Returns rows new."""

    def record_usage(self, events: Sequence[UsageEvent]) -> int:
        """Write usage records, and keep the balance snapshot in the same transaction; idempotent
        by event id (a repeat is ignored). Returns rows new."""

    def usage_for(
        self, msisdn: str, limit: int = 100, before: tuple[int, int, str] | None = None
    ) -> list[UsageEvent]:
        """Newest first; `before` (occurred_at, request_number, event_id) of the last event of the
        page before continues after it."""

    def usage_between(self, start: int, end: int, batch: int = 2_000) -> Iterator[UsageEvent]:
        """Every subscriber's usage of [start, end) in epoch seconds, oldest first, streamed."""

    def buckets_for(self, msisdn: str) -> list[BucketRecord]: ...

    def bucket_consumption(self, msisdn: str) -> dict[str, int]:
        """Units taken from each of the subscriber's buckets by recorded usage."""

    def wallet_balance(self, msisdn: str) -> int:
        """Wallet in kuruş as the record knows it: ledger movements minus usage debits."""

    def balance_snapshot(self, msisdn: str) -> BalanceSnapshot | None: ...

    def set_renewal(self, msisdn: str, package: str, renew: bool, now: int) -> None:
        """Renew `package` from the wallet when it ends (or stop doing so)."""

    def renewals_of(self, msisdn: str) -> list[str]:
        """The packages the subscriber renews, by code."""

    def renewals_due(self, start: int, end: int) -> list[ExpiringPackage]:
        """Chosen renewals whose package's latest grant ended in (start, end] and whose period was
        not tried yet."""

    def renewal_tried(self, msisdn: str, package: str, valid_until: int) -> None:
        """The period ending at `valid_until` was renewed (or tried): never again."""

    def expiring_packages(self, start: int, end: int) -> list[ExpiringPackage]:
        """Package grants whose buckets end in (start, end], every subscriber, soonest first."""

    def save_catalogue(self, version: str, source: str, activated_at: int) -> None:
        """Record a catalogue version that was put in force (a repeat of a version is ignored)."""

    def latest_catalogue(self) -> CatalogueRecord | None:
        """The one in force if any is; else the last recorded."""

    def put_catalogue_in_force(
        self, version: str, source: str, activated_at: int, *, only_if_none: bool = False
    ) -> CatalogueInForce:
        """Record the version (raises CatalogueConflict if it is on record with other content) and
        put it in force, in one transaction; with `only_if_none`, only when nothing is in force yet
        (the seed of an empty record). Returns what is in force afterwards."""

    def catalogue_in_force(self) -> CatalogueInForce | None:
        """One one-row query: cheap enough to poll every few seconds."""

    def catalogue_version(self, version: str) -> CatalogueRecord | None: ...

    def close(self) -> None: ...
