"""A voucher credits once with the balance store on a real VoltDB (issue 12 §1): the held
reference lives in the account header VoltDB keeps, so a crash between the top-up and the credit
is finished without a second credit, after more top-ups than the account's window of references.

Skipped where VoltDB cannot run (no JDK or Maven); a failure under CI=true.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellcelly.application.selfcare import VoucherUsed
from cellcelly.codec import event_from_dict
from cellcelly.deploy import mw as mw_deploy
from cellcelly.deploy.backends import open_backends
from cellcelly.domain.provisioning import REFERENCES_KEPT, LedgerEvent
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly_testing import running_voltdb

pytestmark = [pytest.mark.contract, pytest.mark.timeout(600)]

A = "5321112233"


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def voltdb() -> Iterator[str]:
    with running_voltdb() as servers:
        yield servers


def test_a_crash_after_the_voltdb_top_up_is_finished_without_a_second_credit(
    voltdb: str, tmp_path: Path
) -> None:
    values: dict[str, Any] = {"data_dir": tmp_path, "mw_token_secret": "t" * 40}
    components = open_backends(Settings(**values, balance_store="voltdb", voltdb_servers=voltdb))
    try:
        selfcare = mw_deploy.selfcare(
            components.settings, components.accounts, components.credentials, email=components.email
        )
        accounts = components.accounts
        accounts.open(SubscriberRecord(A, "Ayşe", "Çelik", "a@example.com"))
        [code] = asyncio.run(selfcare.create_vouchers(900, 1))
        before = _wallet(components)
        top_up = accounts.top_up

        def top_up_then_crash(*args: Any, **kw: Any) -> Any:
            top_up(*args, **kw)
            raise Crash

        accounts.top_up = top_up_then_crash  # type: ignore[method-assign]
        with pytest.raises(Crash):
            asyncio.run(selfcare.redeem_voucher(A, code))
        accounts.top_up = top_up  # type: ignore[method-assign]
        account = components.store.get(A)
        assert account is not None and len(account.held_references) == 1  # read back from VoltDB
        for i in range(REFERENCES_KEPT + 1):
            accounts.top_up(A, 1, f"admin:{i}")
        asyncio.run(selfcare.redeem_voucher(A, code))
        with pytest.raises(VoucherUsed):
            asyncio.run(selfcare.redeem_voucher(A, code))
        account = components.store.get(A)
        assert account is not None and account.held_references == ()
        assert account.wallet == before + 900 + REFERENCES_KEPT + 1
        store = components.store
        while entries := store.outbox(limit=1000):
            events = [event_from_dict(orjson.loads(orjson.dumps(e.event))) for e in entries]
            components.records.apply_ledger([e for e in events if isinstance(e, LedgerEvent)])
            store.ack(e.seq for e in entries)
        assert components.records.wallet_balance(A) == account.wallet
    finally:
        components.close()


def _wallet(components: Any) -> int:
    account = components.store.get(A)
    assert account is not None
    return int(account.wallet)
