"""The rows the SF writes for a batch (`adapters/sql/usage_rows.py`, compiled in the services image):
each subscriber's newest balance, whatever the events' order and kinds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cellcelly.adapters.sql.usage_rows import newest_snapshots, usage_bucket_values, usage_values
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.domain.units import Service
from cellcelly.ports.records import BalanceSnapshot

MSISDNS = ("5320000001", "5320000002", "5320000003")
Item = BalanceSnapshot | UsageEvent | LedgerEvent


def usage(n: int, msisdn: str, wallet: int, revision: int, at: int) -> UsageEvent:
    return UsageEvent(
        f"s{n}#1#1", msisdn, f"s{n}", 1, 1, Service.DATA, "r", 10, 0, 10, 0, 5, wallet, at,
        (("b1", 3), ("b2", 4)), revision, "905551234567", "TR", "v1",
    )  # fmt: skip


def ledger(n: int, msisdn: str, wallet: int, revision: int, at: int) -> LedgerEvent:
    return LedgerEvent(f"l{n}", msisdn, "topup", 100, wallet, at, f"ref{n}", revision=revision)


@st.composite
def items(draw: st.DrawFn) -> list[Item]:
    out: list[Item] = []
    for n in range(draw(st.integers(0, 25))):
        msisdn = draw(st.sampled_from(MSISDNS))
        wallet, revision, at = draw(st.integers(0, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 2))
        kind = draw(st.sampled_from(("usage", "ledger", "snapshot")))
        if kind == "usage":
            out.append(usage(n, msisdn, wallet, revision, at))
        elif kind == "ledger":
            out.append(ledger(n, msisdn, wallet, revision, at))
        else:
            out.append(BalanceSnapshot(msisdn, wallet, revision, at, f"e{n}"))
    return out


def as_snapshot(item: Item) -> BalanceSnapshot:
    if isinstance(item, BalanceSnapshot):
        return item
    return BalanceSnapshot(item.msisdn, item.wallet_after, item.revision, item.occurred_at, item.event_id)


def newer(a: BalanceSnapshot, b: BalanceSnapshot) -> bool:
    """The rule as the stored snapshot's upsert states it (`sqlite_bulk._UPSERT_BALANCES`)."""
    if (a.as_of, a.revision) != (b.as_of, b.revision):
        return (a.as_of, a.revision) > (b.as_of, b.revision)
    return a.wallet < b.wallet


@given(items())
def test_each_subscriber_s_newest_balance_in_msisdn_order(batch: list[Item]) -> None:
    expected: dict[str, BalanceSnapshot] = {}
    for item in batch:
        snapshot = as_snapshot(item)
        seen = expected.get(snapshot.msisdn)
        if seen is None or newer(snapshot, seen):
            expected[snapshot.msisdn] = snapshot
    assert newest_snapshots(batch) == [expected[m] for m in sorted(expected)]


def test_a_usage_event_s_rows_in_column_order_long_texts_cut_to_the_column() -> None:
    event = usage(1, MSISDNS[0], 900, 4, 1_700_000_000)
    event.destination = "9" * 300
    row = usage_values(event)
    assert row[:7] == ("s1#1#1", MSISDNS[0], "s1", 1, 1, "data", "r")
    assert row[12:14] == (900, 1_700_000_000) and len(row[14]) == 128 and row[15:] == ("TR", "v1")
    assert usage_bucket_values(event) == [("s1#1#1", 0, "b1", 3), ("s1#1#1", 1, "b2", 4)]
