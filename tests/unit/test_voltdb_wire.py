"""`voltdb_wire`'s encoding and decoding against voltdbclient's, byte for byte and field for field.

voltdbclient is the reference here (the blocking path uses it, and the integration tests run both
against a real server); this checks the asyncio client's hand-written frames over every value
hypothesis finds, including non-ASCII text and SQL NULLs.
"""

from __future__ import annotations

from typing import Any

import pytest
import voltdbclient  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.adapters.voltdb_blocking import PROCEDURES
from cellcelly.adapters.voltdb_wire import BIGINT, STRING, decode_answer, encode_call

pytestmark = pytest.mark.unit

FS = voltdbclient.FastSerializer
texts = st.text(max_size=40)
longs = st.integers(-(2**63) + 1, 2**63 - 1)


class _Capture:
    """Stands in for the socket: keeps what voltdbclient sends, answers nothing."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, n: int) -> bytes:
        return b""

    def gettimeout(self) -> None:
        return None

    def settimeout(self, value: float | None) -> None:
        pass


def voltdbclient_frame(procedure: str, params: list[Any]) -> bytes:
    fser = FS()
    fser.socket = _Capture()
    voltdbclient.VoltProcedure(fser, procedure, PROCEDURES[procedure]).call(params)
    return fser.socket.sent  # type: ignore[no-any-return]


@given(texts, longs, texts, st.lists(texts, min_size=1, max_size=5), st.lists(texts, min_size=1, max_size=5))
def test_a_commit_is_framed_as_voltdbclient_frames_it(
    msisdn: str, version: int, header: str, ids: list[str], events: list[str]
) -> None:
    params = [msisdn, version, header, ids, ids, ids[:1], events]
    types = PROCEDURES["BalanceCommit"]
    assert encode_call(1, "BalanceCommit", types, params) == voltdbclient_frame("BalanceCommit", params)


@given(texts, longs, texts, st.lists(texts, min_size=1, max_size=5), st.lists(texts, min_size=1, max_size=5))
def test_bodies_given_as_utf8_bytes_are_framed_as_their_text(
    msisdn: str, version: int, header: str, ids: list[str], events: list[str]
) -> None:
    """The loop's commit hands orjson's bytes over as they are (no decode and encode again)."""
    text = [msisdn, version, header, ids, ids, ids[:1], events]
    raw = [
        msisdn,
        version,
        header.encode(),
        ids,
        [i.encode() for i in ids],
        ids[:1],
        [e.encode() for e in events],
    ]
    types = PROCEDURES["BalanceCommit"]
    assert encode_call(1, "BalanceCommit", types, raw) == voltdbclient_frame("BalanceCommit", text)


@given(st.lists(longs, min_size=1, max_size=5), st.lists(longs, min_size=1, max_size=5))
def test_arrays_of_numbers_and_reads_are_framed_alike(uids: list[int], idxs: list[int]) -> None:
    for procedure, params in (
        ("BalanceOutboxAck", [uids, idxs]),
        ("BalanceOutboxRead", [uids[0], idxs[0], 500]),
        ("BalanceGet", ["5320000001"]),
        ("@UpdateClasses", [b"\x00jar\xff", ""]),
        ("BalanceOutboxSize", []),
    ):
        assert encode_call(1, procedure, PROCEDURES[procedure], params) == voltdbclient_frame(
            procedure, params
        )


def test_a_wrong_number_of_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match="takes 1 parameters"):
        encode_call(1, "BalanceGet", PROCEDURES["BalanceGet"], [])


def answer_body(
    handle: int,
    status: int,
    status_string: str | None,
    app_status: int,
    app_string: str | None,
    rows: list[Any],
) -> bytes:
    """An answer as VoltDB writes it, built with voltdbclient's own serialiser."""
    fser = FS()
    fser.writeByte(0)
    fser.writeInt64(handle)
    fser.writeByte((0x20 if status_string is not None else 0) | (0x80 if app_string is not None else 0))
    fser.writeByte(status)
    if status_string is not None:
        fser.writeString(status_string)
    fser.writeByte(app_status)
    if app_string is not None:
        fser.writeString(app_string)
    fser.writeInt32(7)  # cluster round trip
    fser.writeInt16(2)
    for columns, table_rows in (([BIGINT, STRING], rows), ([STRING], [[r[1]] for r in rows])):
        table = voltdbclient.VoltTable(fser)
        table.columns = [voltdbclient.VoltColumn(type=t, name=f"C{i}") for i, t in enumerate(columns)]
        table.tuples = table_rows
        table.writeToSerializer()
    return bytes(fser.wbuf)


@given(
    longs.filter(lambda n: n >= 0),
    st.integers(-127, 127),  # -128 is a NULL TINYINT to voltdbclient
    st.none() | texts,
    st.integers(-127, 127),  # -128 is a NULL TINYINT to voltdbclient
    st.none() | texts,
    st.lists(st.tuples(st.none() | longs, st.none() | texts).map(list), max_size=6),
)
def test_an_answer_reads_as_voltdbclient_reads_it(
    handle: int,
    status: int,
    status_string: str | None,
    app_status: int,
    app_string: str | None,
    rows: list[Any],
) -> None:
    body = answer_body(handle, status, status_string, app_status, app_string, rows)
    got_handle, mine = decode_answer(body)
    theirs = voltdbclient.VoltResponse._from_body(FS(), body)
    assert got_handle == theirs.clientHandle == handle
    assert (mine.status, mine.statusString, mine.appStatus, mine.appStatusString) == (
        theirs.status,
        theirs.statusString,
        theirs.appStatus,
        theirs.appStatusString,
    )
    assert mine.tables is not None
    assert [t.tuples for t in mine.tables] == [t.tuples for t in theirs.tables]
    assert mine.tables[0].tuples == rows
