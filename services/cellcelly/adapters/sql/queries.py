"""Every SQL statement the system-of-record adapter runs, built by small functions.

`SqlRecords` calls these builders and nothing else, so `representative_statements()` (a sample of
each) lets a unit test compile the real statements for Oracle without an Oracle server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Insert,
    Select,
    String,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql.expression import Executable

from cellcelly.adapters.sql.schema import (
    balance_snapshots,
    buckets,
    catalogue_versions,
    subscribers,
    usage_buckets,
    usage_records,
    wallet_ledger,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    RowSelect: TypeAlias = Select[*tuple[Any, ...]]  # SQLAlchemy 2.1 spelling

# Oracle refuses more than 1000 expressions in an IN list; stay well below.
IN_CHUNK = 500


def insert_rows(table: Table) -> Insert:
    """INSERT for executemany (a list of row dicts) or a single row."""
    return insert(table)


def existing_keys(column: Column[str], keys: Sequence[str]) -> Select[str]:
    """Which of `keys` (at most IN_CHUNK of them) are already in `column`."""
    return select(column).where(column.in_(list(keys)))


def existing_keys_any(column: Column[str], keys: Sequence[str]) -> Select[str]:
    """Which of `keys` are already in `column`, as `= ANY(array)` (PostgreSQL only)."""
    return select(column).where(column == any_(literal(list(keys), ARRAY(String))))


def select_subscriber(msisdn: str) -> RowSelect:
    return select(subscribers).where(subscribers.c.msisdn == msisdn)


def select_subscribers(limit: int, offset: int) -> RowSelect:
    return select(subscribers).order_by(subscribers.c.msisdn).limit(limit).offset(offset)


def update_status(msisdn: str, status: str) -> Update:
    return update(subscribers).where(subscribers.c.msisdn == msisdn).values(status=status)


def select_buckets(msisdn: str) -> RowSelect:
    return (
        select(buckets)
        .where(buckets.c.msisdn == msisdn)
        .order_by(buckets.c.valid_until, buckets.c.id)  # as the domain spends them
    )


def select_usage(msisdn: str, limit: int) -> RowSelect:
    """Newest first; events of the same second by request number, then id, descending."""
    return (
        select(usage_records)
        .where(usage_records.c.msisdn == msisdn)
        .order_by(
            usage_records.c.occurred_at.desc(),
            usage_records.c.request_number.desc(),
            usage_records.c.event_id.desc(),
        )
        .limit(limit)
    )


def select_usage_buckets(event_ids: Sequence[str]) -> RowSelect:
    """The consumed buckets of at most IN_CHUNK usage events, in their original order."""
    return (
        select(usage_buckets)
        .where(usage_buckets.c.event_id.in_(list(event_ids)))
        .order_by(usage_buckets.c.event_id, usage_buckets.c.ordinal)
    )


def select_wallet_balance(msisdn: str) -> Select[int]:
    """sum(ledger amounts) - sum(usage money); Oracle gets FROM DUAL added by SQLAlchemy."""
    credits = (
        select(func.coalesce(func.sum(wallet_ledger.c.amount), 0))
        .where(wallet_ledger.c.msisdn == msisdn)
        .scalar_subquery()
    )
    debits = (
        select(func.coalesce(func.sum(usage_records.c.money), 0))
        .where(usage_records.c.msisdn == msisdn)
        .scalar_subquery()
    )
    return select(cast(credits - debits, BigInteger))


def select_bucket_consumption(msisdn: str) -> RowSelect:
    """Units each of a subscriber's buckets has given to usage (for rebuilding balances)."""
    return (
        select(usage_buckets.c.bucket_id, cast(func.sum(usage_buckets.c.units), BigInteger).label("units"))
        .select_from(usage_buckets.join(usage_records, usage_buckets.c.event_id == usage_records.c.event_id))
        .where(usage_records.c.msisdn == msisdn)
        .group_by(usage_buckets.c.bucket_id)
    )


def select_expiring_packages(start: int, end: int) -> RowSelect:
    """Package grants (subscriber, package, end) whose buckets end in (start, end]."""
    return (
        select(buckets.c.msisdn, buckets.c.package, buckets.c.valid_until)
        .where(
            # named binds: anonymous ones on one column get names too long for Oracle
            buckets.c.valid_until > bindparam("from_time", start, type_=buckets.c.valid_until.type),
            buckets.c.valid_until <= bindparam("to_time", end, type_=buckets.c.valid_until.type),
            buckets.c.package.is_not(None),  # Oracle keeps "" as NULL: wallet-only grants
            buckets.c.package != "",
        )
        .group_by(buckets.c.msisdn, buckets.c.package, buckets.c.valid_until)
        .order_by(buckets.c.valid_until, buckets.c.msisdn)
    )


def select_balance_snapshot(msisdn: str) -> RowSelect:
    return select(balance_snapshots).where(balance_snapshots.c.msisdn == msisdn)


def update_older_snapshot(sample: dict[str, Any] | None = None) -> Update:
    """For executemany with b_msisdn, b_wallet, b_revision, b_as_of, b_event_id: replace a
    snapshot only by a newer one (see `BalanceSnapshot.newer_than`); the row lock makes the test
    and the write one step, so two writers cannot take it back. `sample`: values for compiling."""
    t = balance_snapshots.c

    def bind(name: str) -> Any:
        return bindparam(f"b_{name}", (sample or {}).get(name), type_=t[name].type)

    as_of, revision, wallet = bind("as_of"), bind("revision"), bind("wallet")
    return (
        update(balance_snapshots)
        .where(t.msisdn == bind("msisdn"))
        .where(
            or_(
                t.as_of < as_of,
                and_(t.as_of == as_of, t.revision < revision),
                and_(t.as_of == as_of, t.revision == revision, t.wallet > wallet),
            )
        )
        .values(wallet=wallet, revision=revision, as_of=as_of, event_id=bind("event_id"))
    )


def select_latest_catalogue() -> RowSelect:
    return (
        select(catalogue_versions)
        .order_by(catalogue_versions.c.activated_at.desc(), catalogue_versions.c.version.desc())
        .limit(1)
    )


def representative_statements() -> dict[str, Executable]:
    """One instance of every statement shape the adapter runs, with sample values."""
    sample_ids = ["a", "b"]
    statements: dict[str, Executable] = {
        f"insert_{table.name}": insert_rows(table)
        for table in (
            subscribers,
            buckets,
            wallet_ledger,
            usage_records,
            usage_buckets,
            balance_snapshots,
            catalogue_versions,
        )
    }
    statements.update(
        {
            "existing_ledger": existing_keys(wallet_ledger.c.event_id, sample_ids),
            "existing_buckets": existing_keys(buckets.c.id, sample_ids),
            "existing_usage": existing_keys(usage_records.c.event_id, sample_ids),
            "existing_catalogue": existing_keys(catalogue_versions.c.version, sample_ids),
            "existing_subscriber": existing_keys(subscribers.c.msisdn, sample_ids),
            "select_subscriber": select_subscriber("905321234567"),
            "select_subscribers": select_subscribers(100, 200),
            "update_status": update_status("905321234567", "suspended"),
            "select_buckets": select_buckets("905321234567"),
            "select_usage": select_usage("905321234567", 100),
            "select_usage_buckets": select_usage_buckets(sample_ids),
            "select_wallet_balance": select_wallet_balance("905321234567"),
            "select_bucket_consumption": select_bucket_consumption("905321234567"),
            "select_latest_catalogue": select_latest_catalogue(),
            "select_expiring_packages": select_expiring_packages(1_790_000_000, 1_790_086_400),
            "select_balance_snapshot": select_balance_snapshot("905321234567"),
            "update_older_snapshot": update_older_snapshot(
                {
                    "msisdn": "905321234567",
                    "wallet": 100,
                    "revision": 7,
                    "as_of": 1_790_000_000,
                    "event_id": "e",
                }
            ),
        }
    )
    return statements
