"""What the VoltDB store keeps for a subscriber's next charge on the loop (`_committed`): exactly
what its BalanceCommit left in the store. Pure: the store's rows are simulated from the commit's
own parameters (header replaced, sessions written, sessions deleted), as the procedure applies them."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.adapters.balance_voltdb import VoltBalanceStore, _account, _committed, _Kept
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.codec import header_to_list, session_to_list
from cellcelly.domain.account import Account, Session, Sessions
from cellcelly.domain.provisioning import open_account
from cellcelly.ports.balance_store import Commit
from cellcelly.settings import DEFAULT_CATALOGUE

NOW = 1_800_000_000
IDS = ["a", "b", "c", "d", "e"]
CATALOGUE = CatalogueHolder.from_file(DEFAULT_CATALOGUE).current


def _account_with(sessions: dict[str, int], wallet: int) -> Account:
    account = open_account("5320000001", CATALOGUE, "ANKARA", NOW).account
    account.wallet = wallet
    account.sessions = Sessions.of({sid: Session(sid, n, NOW + n, "home") for sid, n in sessions.items()})
    return account


def _rows_after(rows: dict[str, bytes], params: list[Any]) -> dict[str, bytes]:
    """The session rows after BalanceCommit: its upserts and deletes (arrays start with a skip)."""
    rows = dict(rows)
    for sid in params[5][1:]:
        rows.pop(sid, None)
    rows.update(zip(params[3][1:], params[4][1:], strict=True))
    return rows


sessions = st.dictionaries(st.sampled_from(IDS), st.integers(0, 9), max_size=len(IDS))


@given(
    before=sessions,
    after=sessions,
    named=st.sets(st.sampled_from(IDS)),
    removed=st.sets(st.sampled_from(IDS)),
    wallets=st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)),
)
def test_what_is_kept_is_what_the_commit_left_in_the_store(
    before: dict[str, int],
    after: dict[str, int],
    named: set[str],
    removed: set[str],
    wallets: tuple[int, int],
) -> None:
    old = _account_with(before, wallets[0])
    rows = {sid: orjson.dumps(session_to_list(s)) for sid, s in old.sessions.items()}
    kept: _Kept = (3, orjson.dumps(header_to_list(old)), tuple(rows.items()))
    new = _account_with(after, wallets[1])
    # sessions changed in place but not named stay as stored, in the store and in what is kept
    changed = named | {sid for sid in after if sid not in before}
    commit = Commit(new, changed_sessions=sorted(changed), removed_sessions=sorted(removed))
    params = VoltBalanceStore._commit_params(3, old, commit)

    now = _committed(kept, params)

    stored = _rows_after(rows, params)
    assert now[0] == 4 and now[1] == params[2]
    assert dict(now[2]) == stored and len(now[2]) == len(stored)
    account = _account(now)
    assert account is not None and sorted(account.sessions) == sorted(after)
    assert account.wallet == wallets[1]


def test_no_account_is_kept_as_none() -> None:
    assert _account((0, None, ())) is None
