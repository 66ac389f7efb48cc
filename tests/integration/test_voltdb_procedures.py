"""The outbox procedures on a real VoltDB 10.1.1, called as the adapter calls them. The two
acknowledgements share their delete loop (OutboxAckBase) and the two reads their statements
(OutboxReadBase): each must still delete more events than VoltDB queues in one batch (200), and
the reads must stay read-only (a write in their base would make every relay read a read-write
transaction). Skipped where VoltDB cannot run; a failure under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson
import pytest
from test_voltdb_off_loop import provision

from cellcelly.adapters.balance_voltdb import IDX_BITS, parse_servers
from cellcelly.adapters.voltdb_blocking import VoltConnection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BATCH = 200  # the statements VoltDB queues at most in one batch (OutboxAckBase.MAX_BATCH)
SUBSCRIBERS = [f"53500{i:05d}" for i in range(600)]  # one event each; ~300 in each of two partitions


@pytest.fixture
def conn(voltdb: str) -> Iterator[VoltConnection]:
    host, port = parse_servers(voltdb)[0]
    connection = VoltConnection(host, port, 30.0)
    try:
        yield connection
    finally:
        connection.close()


def deleted(conn: VoltConnection, procedure: str, head: list[object], seqs: Sequence[int]) -> int:
    """How many events `procedure` says it deleted, asked for `seqs` in one call."""
    mask = (1 << IDX_BITS) - 1
    response = conn.call(procedure, [*head, [s >> IDX_BITS for s in seqs], [s & mask for s in seqs]])
    assert response.status == 1, response.statusString
    return int((response.tables or [])[0].tuples[0][0])


def outbox(conn: VoltConnection, procedure: str, head: list[object]) -> list[int]:
    """Every seq `procedure` reads from the start (one page, the outbox is smaller)."""
    response = conn.call(procedure, [*head, 0, 0, 10_000])
    assert response.status == 1, response.statusString
    tables = response.tables or []
    return [(uid << IDX_BITS) | idx for t in tables for uid, idx, _ in t.tuples]


def test_both_acknowledgements_delete_more_events_than_one_batch(voltdb: str, conn: VoltConnection) -> None:
    provision(voltdb, *SUBSCRIBERS)
    everything = outbox(conn, "BalanceOutboxRead", [])
    assert len(everything) == len(SUBSCRIBERS)
    parts = sorted(str(key) for _, key in (conn.call("@GetPartitionKeys", ["STRING"]).tables or [])[0].tuples)
    part = parts[0]
    in_part = outbox(conn, "BalanceOutboxReadPart", [part])
    assert BATCH < len(in_part) < len(everything), "the test needs a part longer than a batch"
    unknown = max(everything) + 1_000_003

    assert deleted(conn, "BalanceOutboxAckPart", [part], [*in_part, unknown]) == len(in_part)
    assert outbox(conn, "BalanceOutboxReadPart", [part]) == []
    rest = sorted(set(everything) - set(in_part))
    assert len(rest) > BATCH
    assert deleted(conn, "BalanceOutboxAck", [], [*everything, unknown]) == len(rest)
    assert outbox(conn, "BalanceOutboxRead", []) == []


def test_the_reads_stay_read_only_and_the_acknowledgements_write(conn: VoltConnection) -> None:
    rows = (conn.call("@SystemCatalog", ["PROCEDURES"]).tables or [])[0].tuples
    remarks = {row[2]: orjson.loads(row[6]) for row in rows}  # PROCEDURE_NAME, REMARKS
    seen = {
        name: (remarks[name]["readOnly"], remarks[name]["singlePartition"])
        for name in ("BalanceOutboxRead", "BalanceOutboxReadPart", "BalanceOutboxAck", "BalanceOutboxAckPart")
    }
    assert seen == {
        "BalanceOutboxRead": (True, False),
        "BalanceOutboxReadPart": (True, True),
        "BalanceOutboxAck": (False, False),
        "BalanceOutboxAckPart": (False, True),
    }


def test_an_acknowledgement_with_gaps_deletes_only_the_given(voltdb: str, conn: VoltConnection) -> None:
    """The range delete is taken only when nothing but the given events lies in the range: every
    other event of a part acknowledged leaves the rest, then the rest goes (the relay's case)."""
    provision(voltdb, *(f"53600{i:05d}" for i in range(40)))
    parts = sorted(str(key) for _, key in (conn.call("@GetPartitionKeys", ["STRING"]).tables or [])[0].tuples)
    part = parts[0]
    in_part = outbox(conn, "BalanceOutboxReadPart", [part])
    assert len(in_part) > 4
    assert deleted(conn, "BalanceOutboxAckPart", [part], in_part[1::2]) == len(in_part[1::2])
    assert outbox(conn, "BalanceOutboxReadPart", [part]) == in_part[0::2]
    assert deleted(conn, "BalanceOutboxAckPart", [part], in_part[0::2]) == len(in_part[0::2])
    assert outbox(conn, "BalanceOutboxReadPart", [part]) == []


def test_a_stale_commit_writes_nothing_of_its_batch(voltdb: str, conn: VoltConnection) -> None:
    """BalanceCommit checks the version in the header's update, in one batch with the session and
    outbox writes: when the check fails, the abort takes those writes back too."""
    msisdn = "5370000001"
    provision(voltdb, msisdn)
    version, header = (conn.call("BalanceGet", [msisdn]).tables or [])[0].tuples[0][:2]
    assert conn.call("BalanceCommit", [msisdn, version, header, [""], [""], [""], [""]]).status == 1
    version += 1  # a stale version then is not 0, which takes another path (the account is new)
    before = outbox(conn, "BalanceOutboxRead", [])
    stale = [msisdn, version - 1, header, ["", "s1"], ["", "{}"], [""], ["", '{"type": "usage"}']]
    response = conn.call("BalanceCommit", stale)
    assert response.status == -1 and response.appStatus == 1  # USER_ABORT, VERSION_CONFLICT
    assert f"at version {version}, expected {version - 1}" in response.appStatusString
    assert outbox(conn, "BalanceOutboxRead", []) == before
    assert (conn.call("BalanceSessionOwner", ["s1"]).tables or [])[0].tuples == []
    fresh = [msisdn, version, header, ["", "s1"], ["", "{}"], [""], ["", '{"type": "usage"}']]
    assert conn.call("BalanceCommit", fresh).status == 1
    assert (conn.call("BalanceSessionOwner", ["s1"]).tables or [])[0].tuples == [[msisdn]]
