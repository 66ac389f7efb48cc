"""`python -m cellcelly_dev.http_inproc`: its requests interleave sessions as the HTTP bench's
connections do (each session's requests in order, a finished session's place taken by the next)."""

from __future__ import annotations

import orjson
import pytest

from cellcelly_dev.bench import OCS_KEY
from cellcelly_dev.http_inproc import requests

pytestmark = pytest.mark.unit


def _session_and_number(body: bytes) -> tuple[str, int]:
    fields = orjson.loads(body)
    return fields["sessionId"], fields["invocationSequenceNumber"]


@pytest.mark.parametrize("noop", [False, True])
def test_requests_take_the_sessions_in_turn_each_in_its_order(noop: bool) -> None:
    batch = requests(noop, first_sid=7, sessions=3, count=40)
    assert len(batch) == 40
    seen = [_session_and_number(body) for _, _, body in batch]
    assert [sid for sid, _ in seen[:3]] == ["h7", "h8", "h9"]  # one of each, in turn
    numbers: dict[str, list[int]] = {}
    for sid, number in seen:
        numbers.setdefault(sid, []).append(number)
    for sid, got in numbers.items():
        assert got == list(range(len(got))), sid  # each session from its first request, in order
    assert "h10" in numbers  # a session that ended gave its place to the next
    for path, headers, _ in batch:
        assert path.endswith("/noop") == noop
        assert dict(headers)[b"authorization"] == f"Bearer {OCS_KEY}".encode()  # names lowered, as ASGI's
