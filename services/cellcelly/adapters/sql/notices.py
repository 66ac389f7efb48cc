"""`SqlNoticeLedger`: the notifier's claims ("told once") in the system of record.

The table hangs on `schema.metadata` (imported with the package, so the migrated-schema test sees
it). A claim (or a batch of them, `claim_notices`) is one short write transaction: read the row,
then INSERT it or take it over with a compare-and-set on `claimed_at`, so of two replicas exactly
one wins, on SQLite (BEGIN IMMEDIATE serialises writers) as on PostgreSQL and Oracle (the loser of
a concurrent INSERT gets an IntegrityError; the loser of a concurrent takeover updates no row).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Engine, Index, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cellcelly.adapters.sql.engine import writing
from cellcelly.adapters.sql.records import SqlRecords
from cellcelly.adapters.sql.schema import EpochSeconds, metadata
from cellcelly.domain.limits import EVENT_ID_COLUMN
from cellcelly.ports.notices import Claim

__all__ = ["SqlNoticeLedger", "notices"]

IN_LIMIT = 500  # ids in one IN list (Oracle takes at most 1,000)

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

    def claim_notices(self, event_ids: Sequence[str], owner: str, now: int, lease: int) -> dict[str, Claim]:
        """The notifier's batch: its claims in one transaction, decided as `claim_notice` decides
        each. Should a concurrent claimer insert one of them first (the whole transaction then
        fails on its key), each is claimed on its own."""
        c = notices.c
        claims: dict[str, Claim] = {}
        try:
            with writing(self._engine) as conn:
                for start in range(0, len(event_ids), IN_LIMIT):
                    chunk = event_ids[start : start + IN_LIMIT]
                    rows = {
                        row.event_id: row
                        for row in conn.execute(
                            select(c.event_id, c.claimed_at, c.told_at).where(c.event_id.in_(chunk))
                        )
                    }
                    new = []
                    for event_id in chunk:
                        row = rows.get(event_id)
                        if row is None:
                            new.append({"event_id": event_id, "owner": owner, "claimed_at": now})
                            claims[event_id] = Claim.NEW
                        elif row.told_at is not None:
                            claims[event_id] = Claim.DONE
                        elif row.claimed_at > now - lease:
                            claims[event_id] = Claim.HELD
                        else:
                            taken = conn.execute(
                                update(notices)
                                .where(
                                    c.event_id == event_id,
                                    c.told_at.is_(None),
                                    c.claimed_at == row.claimed_at,
                                )
                                .values(owner=owner, claimed_at=now)
                            ).rowcount
                            claims[event_id] = Claim.RETAKEN if taken == 1 else Claim.HELD
                    if new:
                        conn.execute(insert(notices), new)
        except IntegrityError:
            return {event_id: self.claim_notice(event_id, owner, now, lease) for event_id in event_ids}
        return claims

    def notices_done(self, event_ids: Sequence[str], now: int) -> None:
        c = notices.c
        with writing(self._engine) as conn:
            for start in range(0, len(event_ids), IN_LIMIT):
                chunk = event_ids[start : start + IN_LIMIT]
                conn.execute(update(notices).where(c.event_id.in_(chunk)).values(told_at=now))

    def release_notice(self, event_id: str, owner: str) -> None:
        c = notices.c
        with writing(self._engine) as conn:
            conn.execute(delete(notices).where(c.event_id == event_id, c.owner == owner, c.told_at.is_(None)))

    def prune_notices(self, told_before: int) -> int:
        with writing(self._engine) as conn:
            return int(conn.execute(delete(notices).where(notices.c.told_at < told_before)).rowcount)
