"""Held top-up references (issue 12 §1): the pure domain and the account's stored form."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.codec import account_from_dict, account_to_dict, header_from_list, header_to_list
from cellcelly.domain.account import Account, Status
from cellcelly.domain.catalogue import ChargingPolicy
from cellcelly.domain.provisioning import REFERENCES_KEPT, release_reference, top_up

pytestmark = pytest.mark.unit

POLICY = ChargingPolicy()
NOW = 1_800_000_000


def fresh(wallet: int = 10_000) -> Account:
    return Account("5321112233", Status.ACTIVE, wallet)


def test_a_recent_reference_is_forgotten_after_32_others_but_a_held_one_is_not() -> None:
    plain = top_up(fresh(), 10_000, "voucher:a", POLICY, NOW).account
    held = top_up(fresh(), 10_000, "voucher:a", POLICY, NOW, hold=True).account
    for i in range(REFERENCES_KEPT):
        plain = top_up(plain, 1, f"admin:{i}", POLICY, NOW).account
        held = top_up(held, 1, f"admin:{i}", POLICY, NOW).account
    assert top_up(plain, 10_000, "voucher:a", POLICY, NOW).applied  # the window the bug lived in
    again = top_up(held, 10_000, "voucher:a", POLICY, NOW, hold=True)
    assert not again.applied and again.events == [] and again.account.wallet == held.wallet
    assert not top_up(held, 10_000, "voucher:a", POLICY, NOW).applied  # held, however asked


def test_release_forgets_only_that_reference_and_moves_no_money() -> None:
    acc = top_up(fresh(), 500, "voucher:a", POLICY, NOW, hold=True).account
    acc = top_up(acc, 700, "voucher:b", POLICY, NOW, hold=True).account
    released = release_reference(acc, "voucher:a")
    assert released.applied and released.events == []
    assert released.account.held_references == ("voucher:b",)
    assert released.account.wallet == acc.wallet
    assert released.account.revision == acc.revision + 1  # every commit moves the revision
    assert acc.held_references == ("voucher:a", "voucher:b")  # the input is left as it was
    assert not release_reference(released.account, "voucher:a").applied  # twice: nothing to do
    assert not release_reference(fresh(), "voucher:zzz").applied


def test_the_held_top_up_carries_the_same_ledger_event_id() -> None:
    change = top_up(fresh(), 500, "voucher:a", POLICY, NOW, hold=True)
    [event] = change.events
    # the system of record keeps it once by this id, as before
    assert event.event_id == "5321112233#topup#voucher:a" and event.amount == 500


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["v1", "v2", "v3", "other"]), st.booleans(), st.integers(1, 1000)),
        max_size=120,
    )
)
def test_each_held_reference_credits_once_until_released(steps: list[tuple[str, bool, int]]) -> None:
    """Whatever the order of voucher retries, releases and other top-ups, the wallet holds each
    voucher once while it is held, and the ledger events sum to the wallet's growth."""
    acc = fresh(0)
    credited: dict[str, int] = {}
    events = 0
    others = 0
    for i, (what, release, amount) in enumerate(steps):
        if what == "other":
            change = top_up(acc, amount, f"admin:{i}", POLICY, NOW)
            others += amount
        elif release and what in credited:
            change = release_reference(acc, f"voucher:{what}")
        elif what not in credited:
            change = top_up(acc, amount, f"voucher:{what}", POLICY, NOW, hold=True)
            credited[what] = amount
        else:
            change = top_up(acc, amount, f"voucher:{what}", POLICY, NOW, hold=True)
            if f"voucher:{what}" in acc.held_references:
                assert not change.applied
            else:  # released: from here on the record's credited_at is what refuses it
                credited[what] += amount
        events += sum(e.amount for e in change.events)
        acc = change.account
    assert acc.wallet == events == others + sum(credited.values())


def test_an_account_stored_before_held_references_decodes_with_none() -> None:
    acc = top_up(fresh(), 500, "admin:1", POLICY, NOW).account
    old_header = header_to_list(acc)[:9]  # what a journal or VoltDB row written before this holds
    decoded = header_from_list(orjson.loads(orjson.dumps(old_header)))
    assert decoded.held_references == () and decoded.recent_references == ("admin:1",)
    assert decoded.wallet == acc.wallet
    old = orjson.loads(orjson.dumps({"header": old_header, "sessions": []}))
    assert account_from_dict(old).held_references == ()


def test_held_references_survive_the_stored_form() -> None:
    acc = top_up(fresh(), 500, "voucher:a", POLICY, NOW, hold=True).account
    back = account_from_dict(orjson.loads(orjson.dumps(account_to_dict(acc))))
    assert back.held_references == ("voucher:a",) and back == acc
    assert acc.copy().held_references == ("voucher:a",)
