"""Vouchers under redeem, retry, crashes between the steps, many other top-ups and other
subscribers trying the same codes (issue 12 §1): a hypothesis state machine over the real use case,
a real system of record (SQLite) and the embedded balance store.

After every step the SF's work is done (the outbox's ledger events applied to the record, by event
id) and the balance store must agree with the record for every subscriber; each voucher is credited
at most once, and exactly once when its redemption answered 200 or its top-up was made.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from cellcelly.adapters.sql.schema import vouchers, wallet_ledger
from cellcelly.application.selfcare import VoucherUsed
from cellcelly.codec import event_from_dict
from cellcelly.deploy import mw as mw_deploy
from cellcelly.deploy.backends import open_backends
from cellcelly.domain.provisioning import REFERENCES_KEPT, LedgerEvent
from cellcelly.domain.selfcare_rules import normalise_voucher
from cellcelly.ports.records import SubscriberRecord
from cellcelly.security import sha256_hex
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SUBSCRIBERS = ("5321112233", "5339998877")


class Crash(Exception):
    """The process dies here: nothing after this point runs."""


@dataclass
class Model:
    amount: int
    owner: str = ""  # who claimed it
    topped: bool = False  # the balance store has its top-up (and the record, once synced)
    credited: bool = False  # credited_at is set in the record
    held: bool = False  # its reference is held in the owner's account


class VoucherMachine(RuleBasedStateMachine):
    codes = Bundle("codes")

    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vouchers-"))
        values: dict[str, Any] = {"data_dir": self.dir, "mw_token_secret": "t" * 40}
        self.components = open_backends(Settings(**values))
        self.selfcare = mw_deploy.selfcare(
            self.components.settings,
            self.components.accounts,
            self.components.credentials,
            email=self.components.email,
        )
        self.selfcare._vouchers.limit = 10**9  # 409s on purpose here, not a guessing attack
        self.loop = asyncio.new_event_loop()
        self.model: dict[str, Model] = {}
        self.extra = dict.fromkeys(SUBSCRIBERS, 0)  # top-ups other than vouchers
        self.references = itertools.count()
        self.crash_at = ""
        accounts, credentials = self.components.accounts, self.selfcare.credentials
        for msisdn in SUBSCRIBERS:
            accounts.open(SubscriberRecord(msisdn, "Şule", "Işık", f"{msisdn}@example.com"))
        self.initial = {m: self._wallet(m) for m in SUBSCRIBERS}
        # crash points: each runs the real step, then dies when armed
        claim, top_up, release = credentials.claim_voucher, accounts.top_up, accounts.release_reference

        def claim_then_crash(*args: Any) -> Any:
            result = claim(*args)
            if self.crash_at == "claim":
                raise Crash
            return result

        def top_up_then_crash(*args: Any, **kw: Any) -> Any:
            result = top_up(*args, **kw)
            if self.crash_at == "top_up" and kw.get("hold"):
                raise Crash
            return result

        def crash_before_release(*args: Any) -> Any:
            if self.crash_at == "commit":
                raise Crash
            return release(*args)

        credentials.claim_voucher = claim_then_crash  # type: ignore[method-assign]
        accounts.top_up = top_up_then_crash  # type: ignore[method-assign]
        accounts.release_reference = crash_before_release  # type: ignore[method-assign]

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()
            self.components.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _wallet(self, msisdn: str) -> int:
        account = self.components.store.get(msisdn)
        assert account is not None
        return account.wallet

    # --- rules ------------------------------------------------------------------------------------

    @rule(target=codes, amount=st.integers(1, 50_000))
    def create(self, amount: int) -> str:
        [code] = self.loop.run_until_complete(self.selfcare.create_vouchers(amount, 1))
        self.model[code] = Model(amount)
        return code

    @rule(
        code=codes,
        who=st.sampled_from(SUBSCRIBERS),
        crash=st.sampled_from(["", "", "claim", "top_up", "commit"]),
        spaced=st.booleans(),
    )
    def redeem(self, code: str, who: str, crash: str, spaced: bool) -> None:
        v = self.model[code]
        before = self._wallet(who)
        eligible = not v.owner or (v.owner == who and not v.credited)
        self.crash_at = crash
        text = f"{code[:4]} {code[4:8]}-{code[8:]}" if spaced else code
        try:
            account = self.loop.run_until_complete(self.selfcare.redeem_voucher(who, text))
            outcome = "ok"
        except VoucherUsed:
            outcome = "used"
        except Crash:
            outcome = "crash"
        finally:
            self.crash_at = ""
        if not eligible:
            # someone else's, or credited: refused and nothing moves (a crash can hit only the
            # claim, or the release of a reference a crash left held)
            dies = crash == "claim" or (crash == "commit" and v.owner == who)
            assert outcome == ("crash" if dies else "used"), outcome
            if outcome == "used" and v.owner == who:
                v.held = False  # that reference is released by this try
            assert self._wallet(who) == before
            return
        if crash == "":
            assert outcome == "ok", outcome
            # a top-up a crash left made is not made again: the retry only completes it
            assert account.wallet == before + (0 if v.topped else v.amount)
            v.owner, v.topped, v.credited, v.held = who, True, True, False
            return
        assert outcome == "crash", (crash, outcome)
        v.owner = who
        if crash == "top_up":
            assert self._wallet(who) == before + (0 if v.topped else v.amount)
            v.topped = v.held = True
        elif crash == "commit":
            v.topped = v.credited = v.held = True

    @precondition(lambda self: any(v.owner and not v.credited for v in self.model.values()))
    @rule(
        pick=st.integers(0, 1000),
        crash=st.sampled_from(["", "", "top_up", "commit"]),
        others_first=st.sampled_from([0, REFERENCES_KEPT + 1]),
    )
    def retry_cut_short(self, pick: int, crash: str, others_first: int) -> None:
        """The claimer tries again a redemption a crash cut short, maybe after more top-ups than
        the 32 references an account remembers (the path the bug was on)."""
        pending = [c for c, v in self.model.items() if v.owner and not v.credited]
        code = pending[pick % len(pending)]
        if others_first:
            self.other_top_ups(self.model[code].owner, 1, others_first)
        self.redeem(code, self.model[code].owner, crash, spaced=False)

    @rule(
        who=st.sampled_from(SUBSCRIBERS),
        amount=st.integers(1, 500),
        n=st.sampled_from([1, 3, REFERENCES_KEPT, REFERENCES_KEPT + 5]),
    )
    def other_top_ups(self, who: str, amount: int, n: int) -> None:
        """More top-ups than any window of remembered references (the bug's 32)."""
        for _ in range(n):
            self.components.accounts.top_up(who, amount, f"admin:{next(self.references)}")
        self.extra[who] += amount * n

    # --- invariants -------------------------------------------------------------------------------

    def _sync_record(self) -> None:
        store = self.components.store
        while entries := store.outbox(limit=1000):
            events = [event_from_dict(orjson.loads(orjson.dumps(e.event))) for e in entries]
            self.components.records.apply_ledger([e for e in events if isinstance(e, LedgerEvent)])
            store.ack(e.seq for e in entries)

    @invariant()
    def store_agrees_with_record_and_each_voucher_credits_once(self) -> None:
        if not hasattr(self, "loop"):
            return
        self._sync_record()
        records = self.components.records
        for msisdn in SUBSCRIBERS:
            vouchers_in = sum(v.amount for v in self.model.values() if v.owner == msisdn and v.topped)
            expected = self.initial[msisdn] + self.extra[msisdn] + vouchers_in
            assert self._wallet(msisdn) == records.wallet_balance(msisdn) == expected, msisdn
            account = self.components.store.get(msisdn)
            assert account is not None
            held = {self._reference(c) for c, v in self.model.items() if v.owner == msisdn and v.held}
            assert set(account.held_references) == held
        engine = records.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            credits: dict[str, list[str]] = {}
            for reference, msisdn in conn.execute(
                select(wallet_ledger.c.reference, wallet_ledger.c.msisdn).where(
                    wallet_ledger.c.reference.like("voucher:%")
                )
            ):
                credits.setdefault(reference, []).append(msisdn)
            rows = {r.code_hash: r for r in conn.execute(select(vouchers))}
        for code, v in self.model.items():
            got = credits.get(self._reference(code), [])
            assert got == ([v.owner] if v.topped else []), (code, got, v)
            row = rows[self._hash(code)]
            assert (row.used_by or "") == v.owner
            assert (row.credited_at is not None) == v.credited

    @staticmethod
    def _hash(code: str) -> str:
        return sha256_hex(normalise_voucher(code))

    def _reference(self, code: str) -> str:
        return f"voucher:{self._hash(code)[:32]}"


VoucherMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestVouchers = VoucherMachine.TestCase
