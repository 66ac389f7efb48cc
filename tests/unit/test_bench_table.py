"""`make bench`'s table says what qualifies a row's figures."""

from __future__ import annotations

import pytest

from cellcelly_dev.bench import _table

pytestmark = pytest.mark.unit


def row(name: str, **more: object) -> dict[str, object]:
    return {"name": name, "ops_per_s": 10_000.0, "p50_us": 900.0, "p99_us": 9_000.0, "errors": 0, **more}


def test_refused_sessions_and_a_generator_behind_are_shown_on_their_rows() -> None:
    lines = _table(
        [
            row("quiet"),
            row("past the knee", too_busy=1234, abated=567),
            row("behind", generator_bound=True),
        ]
    )
    assert lines.splitlines()[1].startswith("quiet ")
    assert "past the knee (1234 x 3004) (567 abated) " in lines.splitlines()[2]
    assert "behind * " in lines.splitlines()[3]
    assert lines.splitlines()[-1].startswith("* the generator fell behind")
    assert len({len(line) for line in lines.splitlines()[:4]}) == 1  # the columns stay aligned
