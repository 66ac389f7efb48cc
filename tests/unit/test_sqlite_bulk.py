"""SQLite's bulk rows: each distinct value is processed once a batch, unhashable ones every time."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from cellcelly.adapters.sql.schema import usage_records
from cellcelly.adapters.sql.sqlite_bulk import BulkInsert

pytestmark = pytest.mark.unit


def test_repeated_values_are_processed_once_and_unhashable_ones_each_time() -> None:
    bulk = BulkInsert(usage_records, sqlite.dialect())
    assert bulk.processors  # occurred_at: epoch seconds to SQLite's text
    calls: list[Any] = []

    def process(value: Any) -> str:
        calls.append(value)
        return f"<{value}>"

    bulk.processors = [(0, process)]
    rows = bulk.rows([(1, "a"), (1, "b"), (2, "c"), ([3], "d"), ([3], "e")])
    assert rows == [("<1>", "a"), ("<1>", "b"), ("<2>", "c"), ("<[3]>", "d"), ("<[3]>", "e")]
    assert calls == [1, 2, [3], [3]]
    bulk.rows([(1, "f")])
    assert calls[-1] == 1  # a new call processes afresh: nothing is kept between batches
