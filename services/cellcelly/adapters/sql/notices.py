"""`SqlNoticeLedger`: the notifier's claims ("told once") in the system of record.

The table hangs on `schema.metadata` (imported with the package, so the migrated-schema test sees
it). One claim is one short write transaction: read the row, then INSERT it or take it over with a
compare-and-set on `claimed_at`, so of two replicas exactly one wins, on SQLite (BEGIN IMMEDIATE
serialises writers) as on PostgreSQL and Oracle (the loser of a concurrent INSERT gets an
IntegrityError; the loser of a concurrent takeover updates no row).
"""

from __future__ import annotations

from sqlalchemy import Column, Engine, Index, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cellcelly.adapters.sql.engine import writing
from cellcelly.adapters.sql.records import SqlRecords
from cellcelly.adapters.sql.schema import EpochSeconds, metadata
from cellcelly.domain.limits import EVENT_ID_COLUMN
from cellcelly.ports.notices import Claim

__all__ = ["SqlNoticeLedger", "notices"]

# migration 0010 (0011: the index); told_at NULL: claimed by `owner` at `claimed_at` and not (yet) told
notices = Table(
    "notices",
    metadata,
    Column("event_id", String(EVENT_ID_COLUMN), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("claimed_at", EpochSeconds(), nullable=False),
    Column("told_at", EpochSeconds()),
    Index("ix_notices_told_at", "told_at"),  # migration 0011: pruning what was told long ago
)


class SqlNoticeLedger:
    """The `NoticeLedger` port on the record's engine (thread-safe: one pool, short transactions)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def beside(cls, records: object) -> SqlNoticeLedger:
        """The ledger on the engine of `records`, which must be an `SqlRecords`: wherever a notifier
        runs the record is SQL, and the claims belong in the same database."""
        if not isinstance(records, SqlRecords):
            raise TypeError(f"the notices need the SQL record, not {type(records).__name__}")
        return cls(records.engine)

    def claim_notice(self, event_id: str, owner: str, now: int, lease: int) -> Claim:
        c = notices.c
        try:
            with writing(self._engine) as conn:
                row = conn.execute(select(c.claimed_at, c.told_at).where(c.event_id == event_id)).first()
                if row is None:
                    conn.execute(insert(notices), {"event_id": event_id, "owner": owner, "claimed_at": now})
                    return Claim.NEW
                if row.told_at is not None:
                    return Claim.DONE
                if row.claimed_at > now - lease:
                    return Claim.HELD
                taken = conn.execute(
                    update(notices)
                    .where(c.event_id == event_id, c.told_at.is_(None), c.claimed_at == row.claimed_at)
                    .values(owner=owner, claimed_at=now)
                ).rowcount
                return Claim.RETAKEN if taken == 1 else Claim.HELD
        except IntegrityError:  # a concurrent claimer inserted it first; it may not have told it yet
            return Claim.HELD

    def notice_done(self, event_id: str, now: int) -> None:
        with writing(self._engine) as conn:
            conn.execute(update(notices).where(notices.c.event_id == event_id).values(told_at=now))

    def release_notice(self, event_id: str, owner: str) -> None:
        c = notices.c
        with writing(self._engine) as conn:
            conn.execute(delete(notices).where(c.event_id == event_id, c.owner == owner, c.told_at.is_(None)))

    def prune_notices(self, told_before: int) -> int:
        with writing(self._engine) as conn:
            return int(conn.execute(delete(notices).where(notices.c.told_at < told_before)).rowcount)
