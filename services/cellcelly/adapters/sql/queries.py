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
    Delete,
    Insert,
    Select,
    String,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.expression import Executable

from cellcelly.adapters.sql.schema import (
    EpochSeconds,
    balance_snapshots,
    buckets,
    catalogue_in_force,
    catalogue_versions,
    credentials,
    package_renewals,
    refresh_tokens,
    reset_codes,
    subscribers,
    usage_buckets,
    usage_records,
    vouchers,
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


def select_usage(msisdn: str, limit: int, before: tuple[int, int, str] | None = None) -> RowSelect:
    """Newest first; events of the same second by request number, then id, descending. `before`:
    (occurred_at, request_number, event_id) of the last row of the page before (keyset paging on
    the (msisdn, occurred_at) index; spelled out, as Oracle compares no row values)."""
    u = usage_records.c
    where = u.msisdn == msisdn
    if before is not None:
        # named binds (an anonymous one's name is too long for Oracle); EpochSeconds binds the int
        # as the column's datetime
        at = bindparam("before_at", before[0], type_=EpochSeconds())
        number = bindparam("before_number", before[1], type_=BigInteger())
        event_id = bindparam("before_id", before[2], type_=String())
        older = or_(
            u.occurred_at < at,
            and_(
                u.occurred_at == at,
                or_(u.request_number < number, and_(u.request_number == number, u.event_id < event_id)),
            ),
        )
        where = and_(where, older)
    return (
        select(usage_records)
        .where(where)
        .order_by(
            usage_records.c.occurred_at.desc(),
            usage_records.c.request_number.desc(),
            usage_records.c.event_id.desc(),
        )
        .limit(limit)
    )


def select_usage_between(start: int, end: int) -> RowSelect:
    """Every usage record that occurred in [start, end), oldest first: a CDR export's one scan."""
    u = usage_records.c
    return (
        select(usage_records)
        .where(
            u.occurred_at >= bindparam("from_at", start, type_=EpochSeconds()),
            u.occurred_at < bindparam("to_at", end, type_=EpochSeconds()),
        )
        .order_by(u.occurred_at, u.event_id)
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
    r = package_renewals.c
    renews = and_(r.msisdn == buckets.c.msisdn, r.package == buckets.c.package)
    return (
        select(
            buckets.c.msisdn, buckets.c.package, buckets.c.valid_until, func.count(r.msisdn).label("renews")
        )
        .outerjoin_from(buckets, package_renewals, renews)
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


def select_renewals_due(start: int, end: int) -> RowSelect:
    """(msisdn, package, valid_until) of chosen renewals whose package's latest grant ended in
    (start, end] and whose period was not tried yet."""
    r, b = package_renewals.c, buckets.c
    ended = func.max(b.valid_until)
    return (
        select(r.msisdn, r.package, ended.label("valid_until"))
        .join_from(package_renewals, buckets, and_(b.msisdn == r.msisdn, b.package == r.package))
        .group_by(r.msisdn, r.package, r.tried_until)
        .having(
            and_(
                ended > bindparam("from_time", start, type_=EpochSeconds()),
                ended <= bindparam("to_time", end, type_=EpochSeconds()),
                or_(r.tried_until.is_(None), r.tried_until < ended),
            )
        )
        .order_by(ended, r.msisdn)
    )


def select_renewals_of(msisdn: str) -> RowSelect:
    r = package_renewals.c
    return select(r.package).where(r.msisdn == msisdn).order_by(r.package)


def delete_renewal(msisdn: str, package: str) -> Delete:
    r = package_renewals.c
    return delete(package_renewals).where(r.msisdn == msisdn, r.package == package)


def update_renewal_tried(msisdn: str, package: str, valid_until: int) -> Update:
    r = package_renewals.c
    return (
        update(package_renewals)
        .where(r.msisdn == msisdn, r.package == package)
        .values(tried_until=bindparam("tried", valid_until, type_=EpochSeconds()))
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


IN_FORCE_SLOT = 1


def select_catalogue_in_force() -> RowSelect:
    return select(catalogue_in_force).where(catalogue_in_force.c.slot == IN_FORCE_SLOT)


def select_catalogue_version(version: str) -> RowSelect:
    return select(catalogue_versions).where(catalogue_versions.c.version == version)


def update_catalogue_in_force(version: str, activated_at: int) -> Update:
    """The generation grows in the UPDATE itself, so two concurrent activations both count."""
    t = catalogue_in_force
    return (
        update(t)
        .where(t.c.slot == IN_FORCE_SLOT)
        .values(version=version, generation=t.c.generation + 1, activated_at=activated_at)
    )


# --- self-care: every "at most once" is one conditional write -----------------------------------


def select_credential(msisdn: str) -> RowSelect:
    return select(credentials).where(credentials.c.msisdn == msisdn)


def update_credential(msisdn: str, **values: Any) -> Update:
    return update(credentials).where(credentials.c.msisdn == msisdn).values(**values)


def reserve_login_attempt(msisdn: str, now: int, limit: int) -> Update:
    """Count an attempt before its password is verified: no row changes once `limit` are counted or
    the number is locked, so parallel guesses cannot all reach argon2."""
    return (
        update(credentials)
        .where(
            credentials.c.msisdn == msisdn,
            credentials.c.locked_until <= bindparam("now", now, type_=credentials.c.locked_until.type),
            credentials.c.failed_logins < bindparam("max_failures", limit),
        )
        .values(failed_logins=credentials.c.failed_logins + literal_column("1"))
    )


def bump_credential(msisdn: str, **values: Any) -> Update:
    """Change a credential and its version (access tokens of older versions lose admin rights)."""
    return (
        update(credentials)
        .where(credentials.c.msisdn == msisdn)
        .values(version=credentials.c.version + literal_column("1"), **values)
    )


def lock_credential(msisdn: str, limit: int, until: int) -> Update:
    """Lock when the failures reached the limit (and count afresh for after the lock)."""
    return (
        update(credentials)
        .where(
            credentials.c.msisdn == msisdn, credentials.c.failed_logins >= bindparam("max_failures", limit)
        )
        .values(failed_logins=0, locked_until=until)
    )


def revoke_refresh_once(token_hash: str, now: int) -> Update:
    return (
        update(refresh_tokens)
        .where(
            refresh_tokens.c.token_hash == token_hash,
            refresh_tokens.c.revoked == 0,
            refresh_tokens.c.expires_at > now,
        )
        .values(revoked=1)
    )


def select_refresh(token_hash: str) -> RowSelect:
    return select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)


def revoke_refresh_family(family: str) -> Update:
    return (
        update(refresh_tokens)
        .where(refresh_tokens.c.family == family, refresh_tokens.c.revoked == 0)
        .values(revoked=1)
    )


def revoke_refresh_of(msisdn: str) -> Update:
    return (
        update(refresh_tokens)
        .where(refresh_tokens.c.msisdn == msisdn, refresh_tokens.c.revoked == 0)
        .values(revoked=1)
    )


def delete_reset_code(msisdn: str) -> Delete:
    return delete(reset_codes).where(reset_codes.c.msisdn == msisdn)


def select_reset_code(msisdn: str) -> RowSelect:
    return select(reset_codes).where(reset_codes.c.msisdn == msisdn)


def replace_quiet_reset_code(code: dict[str, Any], quiet_since: int) -> Update:
    """Replace a reset code stored at or before `quiet_since` (one code a minute, decided here)."""
    return (
        update(reset_codes)
        .where(reset_codes.c.msisdn == code["msisdn"], reset_codes.c.created_at <= quiet_since)
        .values({k: v for k, v in code.items() if k != "msisdn"})
    )


def reserve_reset_attempt(msisdn: str, max_attempts: int) -> Update:
    return (
        update(reset_codes)
        .where(
            reset_codes.c.msisdn == msisdn,
            reset_codes.c.attempts < bindparam("max_attempts", max_attempts),
        )
        .values(attempts=reset_codes.c.attempts + literal_column("1"))
    )


def delete_spent_reset_code(msisdn: str, max_attempts: int) -> Delete:
    return delete(reset_codes).where(
        reset_codes.c.msisdn == msisdn, reset_codes.c.attempts >= bindparam("max_attempts", max_attempts)
    )


def use_reset_code(msisdn: str, code_hash: str, now: int) -> Delete:
    return delete(reset_codes).where(
        reset_codes.c.msisdn == msisdn,
        reset_codes.c.code_hash == code_hash,
        reset_codes.c.expires_at > now,
    )


def claim_voucher(code_hash: str, msisdn: str, now: int) -> Update:
    return (
        update(vouchers)
        .where(vouchers.c.code_hash == code_hash, vouchers.c.used_by.is_(None))
        .values(used_by=msisdn, used_at=now)
    )


def select_voucher(code_hash: str) -> RowSelect:
    return select(vouchers).where(vouchers.c.code_hash == code_hash)


def lock_claimed_voucher(code_hash: str, msisdn: str) -> Update:
    """A no-op write that locks the row while it is claimed by `msisdn` and not yet credited.

    Portable where SELECT ... FOR UPDATE is not (SQLite): a row lock on PostgreSQL and Oracle, the
    write lock on SQLite. A racer blocks here, then re-reads the row (READ COMMITTED) and matches
    nothing once the holder has committed credited_at: rowcount 1 = locked and eligible.
    """
    return (
        update(vouchers)
        .where(
            vouchers.c.code_hash == code_hash,
            vouchers.c.used_by == msisdn,
            vouchers.c.credited_at.is_(None),
        )
        .values(used_at=vouchers.c.used_at)
    )


def mark_voucher_credited(code_hash: str, now: int) -> Update:
    return update(vouchers).where(vouchers.c.code_hash == code_hash).values(credited_at=now)


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
            catalogue_in_force,
            credentials,
            refresh_tokens,
            reset_codes,
            vouchers,
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
            "select_usage_page": select_usage("905321234567", 100, (1_790_000_000, 3, "s#3#1")),
            "select_usage_between": select_usage_between(1_790_000_000, 1_790_086_400),
            "select_usage_buckets": select_usage_buckets(sample_ids),
            "select_wallet_balance": select_wallet_balance("905321234567"),
            "select_bucket_consumption": select_bucket_consumption("905321234567"),
            "select_latest_catalogue": select_latest_catalogue(),
            "select_catalogue_in_force": select_catalogue_in_force(),
            "select_catalogue_version": select_catalogue_version("2026.01"),
            "update_catalogue_in_force": update_catalogue_in_force("2026.01", 1_790_000_000),
            "select_expiring_packages": select_expiring_packages(1_790_000_000, 1_790_086_400),
            "select_balance_snapshot": select_balance_snapshot("905321234567"),
            "select_renewals_due": select_renewals_due(1_790_000_000, 1_790_086_400),
            "select_renewals_of": select_renewals_of("905321234567"),
            "delete_renewal": delete_renewal("905321234567", "ANKARA"),
            "update_renewal_tried": update_renewal_tried("905321234567", "ANKARA", 1_790_000_000),
            "select_credential": select_credential("5321234567"),
            "update_credential": update_credential("5321234567", password_hash="h", failed_logins=0),
            "reserve_login_attempt": reserve_login_attempt("5321234567", 1_790_000_000, 5),
            "bump_credential": bump_credential("5321234567", role="admin"),
            "lock_credential": lock_credential("5321234567", 5, 1_790_000_900),
            "revoke_refresh_once": revoke_refresh_once("0123456789abcdef" * 4, 1_790_000_000),
            "select_refresh": select_refresh("0123456789abcdef" * 4),
            "revoke_refresh_family": revoke_refresh_family("0123456789abcdef" * 2),
            "revoke_refresh_of": revoke_refresh_of("5321234567"),
            "delete_reset_code": delete_reset_code("5321234567"),
            "select_reset_code": select_reset_code("5321234567"),
            "replace_quiet_reset_code": replace_quiet_reset_code(
                {
                    "msisdn": "5321234567",
                    "code_hash": "0123456789abcdef" * 4,
                    "expires_at": 1_790_000_600,
                    "created_at": 1_790_000_000,
                    "attempts": 0,
                },
                1_789_999_940,
            ),
            "reserve_reset_attempt": reserve_reset_attempt("5321234567", 5),
            "delete_spent_reset_code": delete_spent_reset_code("5321234567", 5),
            "use_reset_code": use_reset_code("5321234567", "0123456789abcdef" * 4, 1_790_000_000),
            "claim_voucher": claim_voucher("0123456789abcdef" * 4, "5321234567", 1_790_000_000),
            "select_voucher": select_voucher("0123456789abcdef" * 4),
            "lock_claimed_voucher": lock_claimed_voucher("0123456789abcdef" * 4, "5321234567"),
            "mark_voucher_credited": mark_voucher_credited("0123456789abcdef" * 4, 1_790_000_000),
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
