"""The `CredentialStore` port on the system of record's engine (SQLite, PostgreSQL, Oracle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, Row
from sqlalchemy.exc import IntegrityError

from cellcelly.adapters.sql import queries as q
from cellcelly.adapters.sql.engine import reading, writing
from cellcelly.adapters.sql.records import subscriber_row
from cellcelly.adapters.sql.schema import credentials, refresh_tokens, reset_codes, subscribers, vouchers
from cellcelly.ports.credentials import Credential, RefreshGrant, ResetCode, Voucher
from cellcelly.ports.records import SubscriberExists, SubscriberRecord

T = TypeVar("T")


def _credential(row: Row[Any]) -> Credential:
    m = row._mapping
    return Credential(
        m["msisdn"],
        m["password_hash"],
        m["security_key_hash"],
        m["role"],
        m["failed_logins"],
        m["locked_until"],
        m["changed_at"],
        m["version"],
    )


def _voucher(row: Row[Any]) -> Voucher:
    m = row._mapping
    return Voucher(
        m["code_hash"],
        m["amount"],
        m["created_at"],
        m["batch"] or "",
        m["used_by"] or "",
        m["used_at"] or 0,
        m["credited_at"] or 0,
    )


class SqlCredentials:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, subscriber: SubscriberRecord, credential: Credential) -> None:
        try:
            with writing(self._engine) as conn:
                if conn.execute(q.existing_keys(subscribers.c.msisdn, [subscriber.msisdn])).first():
                    raise SubscriberExists(subscriber.msisdn)
                conn.execute(q.insert_rows(subscribers), subscriber_row(subscriber))
                conn.execute(
                    q.insert_rows(credentials),
                    {
                        "msisdn": credential.msisdn,
                        "password_hash": credential.password_hash,
                        "security_key_hash": credential.security_key_hash,
                        "role": credential.role,
                        "failed_logins": credential.failed_logins,
                        "locked_until": credential.locked_until,
                        "changed_at": credential.changed_at,
                        "version": credential.version,
                    },
                )
        except IntegrityError as exc:  # a racing registration of the same MSISDN
            raise SubscriberExists(subscriber.msisdn) from exc

    def credential(self, msisdn: str) -> Credential | None:
        with reading(self._engine) as conn:
            row = conn.execute(q.select_credential(msisdn)).first()
        return None if row is None else _credential(row)

    def set_password(self, msisdn: str, password_hash: str, changed_at: int) -> None:
        with writing(self._engine) as conn:
            conn.execute(
                q.bump_credential(
                    msisdn,
                    password_hash=password_hash,
                    changed_at=changed_at,
                    failed_logins=0,
                    locked_until=0,
                )
            )
            conn.execute(q.revoke_refresh_of(msisdn))

    def reserve_attempt(self, msisdn: str, now: int, limit: int) -> bool:
        with writing(self._engine) as conn:
            return bool(conn.execute(q.reserve_login_attempt(msisdn, now, limit)).rowcount)

    def attempt_failed(self, msisdn: str, now: int, limit: int, lock_seconds: int) -> Credential:
        with writing(self._engine) as conn:
            conn.execute(q.lock_credential(msisdn, limit, now + lock_seconds))
            row = conn.execute(q.select_credential(msisdn)).one()
        return _credential(row)

    def login_succeeded(self, msisdn: str) -> None:
        with writing(self._engine) as conn:
            conn.execute(q.update_credential(msisdn, failed_logins=0))

    def set_role(self, msisdn: str, role: str) -> bool:
        with writing(self._engine) as conn:
            return bool(conn.execute(q.bump_credential(msisdn, role=role)).rowcount)

    def add_refresh(self, grant: RefreshGrant, created_at: int) -> None:
        with writing(self._engine) as conn:
            conn.execute(
                q.insert_rows(refresh_tokens),
                {
                    "token_hash": grant.token_hash,
                    "msisdn": grant.msisdn,
                    "expires_at": grant.expires_at,
                    "created_at": created_at,
                    "remember": int(grant.remember),
                    "revoked": 0,
                    "family": grant.family,
                },
            )

    def take_refresh(self, token_hash: str, now: int) -> RefreshGrant | None:
        with writing(self._engine) as conn:
            taken = bool(conn.execute(q.revoke_refresh_once(token_hash, now)).rowcount)
            row = conn.execute(q.select_refresh(token_hash)).first()
            if row is None:
                return None
            m = row._mapping
            reused = not taken and bool(m["revoked"])
            if reused:  # a used token again: whoever holds the family's live token loses it too
                conn.execute(q.revoke_refresh_family(m["family"]))
            elif not taken:  # expired
                return None
        return RefreshGrant(
            m["token_hash"],
            m["msisdn"],
            m["expires_at"],
            bool(m["remember"]),
            m["family"] or m["token_hash"],
            reused,
        )

    def revoke_refresh(self, msisdn: str) -> int:
        with writing(self._engine) as conn:
            return int(conn.execute(q.revoke_refresh_of(msisdn)).rowcount)

    def put_reset_code(self, code: ResetCode, resend_seconds: int) -> bool:
        row = {
            "msisdn": code.msisdn,
            "code_hash": code.code_hash,
            "expires_at": code.expires_at,
            "created_at": code.created_at,
            "attempts": code.attempts,
        }
        # each case is one statement that decides alone: an old enough code is replaced by a
        # conditional UPDATE, a missing one inserted, where the primary key lets one racer win
        with writing(self._engine) as conn:
            quiet_since = code.created_at - resend_seconds
            if conn.execute(q.replace_quiet_reset_code(row, quiet_since)).rowcount:
                return True
        try:
            with writing(self._engine) as conn:
                conn.execute(q.insert_rows(reset_codes), row)
        except IntegrityError:  # a code is there, newer than resend_seconds, or a racer's
            return False
        return True

    def reset_code(self, msisdn: str) -> ResetCode | None:
        with reading(self._engine) as conn:
            row = conn.execute(q.select_reset_code(msisdn)).first()
        if row is None:
            return None
        m = row._mapping
        return ResetCode(m["msisdn"], m["code_hash"], m["expires_at"], m["created_at"], m["attempts"])

    def reserve_reset_attempt(self, msisdn: str, max_attempts: int) -> bool:
        with writing(self._engine) as conn:
            return bool(conn.execute(q.reserve_reset_attempt(msisdn, max_attempts)).rowcount)

    def reset_code_failed(self, msisdn: str, max_attempts: int) -> None:
        with writing(self._engine) as conn:
            conn.execute(q.delete_spent_reset_code(msisdn, max_attempts))

    def take_reset_code(self, msisdn: str, code_hash: str, now: int) -> bool:
        with writing(self._engine) as conn:
            return bool(conn.execute(q.use_reset_code(msisdn, code_hash, now)).rowcount)

    def add_vouchers(self, batch: list[Voucher]) -> None:
        rows = [
            {
                "code_hash": v.code_hash,
                "amount": v.amount,
                "batch": v.batch,
                "created_at": v.created_at,
                "used_by": None,
                "used_at": None,
            }
            for v in batch
        ]
        if rows:
            with writing(self._engine) as conn:
                conn.execute(q.insert_rows(vouchers), rows)

    def claim_voucher(self, code_hash: str, msisdn: str, now: int) -> tuple[Voucher | None, bool]:
        with writing(self._engine) as conn:
            claimed = bool(conn.execute(q.claim_voucher(code_hash, msisdn, now)).rowcount)
            row = conn.execute(q.select_voucher(code_hash)).first()
        return (None, False) if row is None else (_voucher(row), claimed)

    def credit_voucher(
        self, code_hash: str, msisdn: str, now: int, credit: Callable[[Voucher], T]
    ) -> T | None:
        # The transaction spans the balance-store call on purpose: the lock is what makes a racing
        # redemption wait and then find it credited. The store call is one short atomic commit,
        # and nothing that holds a balance-store lock waits for this database.
        with writing(self._engine) as conn:
            if not conn.execute(q.lock_claimed_voucher(code_hash, msisdn)).rowcount:
                return None
            result = credit(_voucher(conn.execute(q.select_voucher(code_hash)).one()))
            conn.execute(q.mark_voucher_credited(code_hash, now))
        return result
