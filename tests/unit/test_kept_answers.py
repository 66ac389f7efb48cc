"""The answers a session keeps for retransmissions: plain tuples the cyclic GC does not walk.

A store keeps every finished session for the answer retention (300 s); its answers as ChargeAnswer
objects were most of the OCS's objects, and full collections walking them were its p99.
"""

from __future__ import annotations

import gc

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.codec import (
    account_from_dict,
    account_to_dict,
    answer_from_list,
    answer_to_list,
    kept_from_list,
    kept_to_list,
    session_from_list,
    session_to_list,
)
from cellcelly.domain.account import Account, Status
from cellcelly.domain.charging import (
    ChargeAnswer,
    ChargeRequest,
    RequestType,
    ResultCode,
    ServiceResult,
    ServiceUsage,
    answer_of,
    charge,
    kept_answer,
)
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
MSISDN = "5321234567"

results = st.builds(
    ServiceResult,
    rating_group=st.integers(0, 2**32 - 1),
    result_code=st.sampled_from(ResultCode),
    granted=st.integers(0, 2**63 - 1),
    validity_time=st.none() | st.integers(0, 2**32 - 1),
    final_unit=st.booleans(),
    redirect_url=st.sampled_from(["", "https://topup.example/tr"]),
    quota_holding_time=st.none() | st.integers(1, 2**32 - 1),
)
answers = st.builds(
    ChargeAnswer,
    session_id=st.text(min_size=1, max_size=40),
    request_type=st.sampled_from(RequestType),
    request_number=st.integers(0, 2**32 - 1),
    result_code=st.sampled_from(ResultCode),
    services=st.lists(results, max_size=3).map(tuple),
)


@given(answers)
def test_a_kept_answer_is_the_answer_and_reads_back_from_what_a_store_writes(answer: ChargeAnswer) -> None:
    kept = kept_answer(answer)
    assert answer_of(kept) == answer
    written = orjson.loads(orjson.dumps(kept_to_list(kept)))  # what a journal or VoltDB holds
    assert kept_from_list(written) == kept
    # the nested form (the wire's answer) journals, snapshots and VoltDB's sessions held before
    nested = orjson.loads(orjson.dumps(answer_to_list(answer)))
    assert kept_from_list(nested) == kept
    assert answer_from_list(nested) == answer


@pytest.mark.parametrize("fields", [0, 3, 5, 10, 12])
def test_a_kept_answer_of_a_wrong_length_is_refused(fields: int) -> None:
    """Neither form: a damaged record, not an answer to keep (a journal with it refuses to open)."""
    with pytest.raises(ValueError, match="kept answer"):
        kept_from_list(list(range(fields)))


@given(st.lists(answers, min_size=1, max_size=20))
@settings(max_examples=10)  # a full collection each
def test_kept_answers_are_untracked_by_the_first_collection(some: list[ChargeAnswer]) -> None:
    kept = [kept_answer(a) for a in some]
    gc.collect()
    assert not any(gc.is_tracked(k) for k in kept)


def test_a_finished_session_keeps_its_answers_untracked_and_replays_them() -> None:
    cat = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
    acc = Account(MSISDN, Status.ACTIVE, 10_000)
    first = ChargeRequest(
        "s;1", RequestType.EVENT, 0, MSISDN, (ServiceUsage(2, Service.SMS, 1, 0, "905551112233"),)
    )
    done = charge(acc, cat, first, NOW)
    assert done.answer.result_code is ResultCode.SUCCESS and done.account is not None
    session = done.account.sessions["s;1"]
    _collect_twice()
    assert not gc.is_tracked(session.answers[0])
    assert not gc.is_tracked(session.answers)  # a tuple of untracked values is untracked too

    again = charge(done.account, cat, first, NOW + 1)  # a retransmission: the stored answer, no change
    assert again.answer == done.answer and again.account is None

    # what a journal or VoltDB writes and reads back is the same session, answers untracked again
    back = session_from_list(orjson.loads(orjson.dumps(session_to_list(session))))
    assert back == session
    whole = account_from_dict(orjson.loads(orjson.dumps(account_to_dict(done.account))))
    assert whole.sessions["s;1"] == session
    _collect_twice()
    assert not gc.is_tracked(back.answers[0]) and not gc.is_tracked(back.answers)


def _collect_twice() -> None:
    """A tuple of tuples is untracked level by level: a collection's own reordering of its objects
    may look at the outer tuple before the answers in it."""
    gc.collect()
    gc.collect()


def test_a_finished_session_keeps_one_copy_of_its_id_and_shares_the_result_codes() -> None:
    """Each request of a session brings its own copy of the id (decoded from its CCR): the kept
    answers and the finished-session window hold the session's, and each result code is one int
    for every answer. A session is kept 300 s, 2,500 a second in `make bench`'s e2e rows: the copies
    were ~190 of its ~1,800 bytes, compiled (docs/performance-log.md)."""
    cat = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
    acc: Account | None = Account(MSISDN, Status.ACTIVE, 10_000_000)
    sid = "gw.example;1;7"
    usage = [ServiceUsage(1, Service.DATA, 1_000_000, used) for used in (0, 500_000, 400_000)]
    kinds = [RequestType.INITIAL, RequestType.UPDATE, RequestType.TERMINATE]
    requests = [ChargeRequest("".join(list(sid)), kinds[n], n, MSISDN, (usage[n],)) for n in range(3)]
    assert len({id(r.session_id) for r in requests}) == 3  # three copies, as three CCRs decode
    for n, req in enumerate(requests):
        assert acc is not None
        done = charge(acc, cat, req, NOW + n)
        assert done.answer.result_code is ResultCode.SUCCESS, done.answer
        acc = done.account
    assert acc is not None
    session = acc.sessions[sid]
    assert session.finished_at is not None and sid not in acc.sessions.live
    assert [kept[2] for kept in session.answers] == [0, 1, 2]
    assert all(kept[0] is session.id for kept in session.answers)
    (key,) = [k for k in acc.sessions if k == sid]
    assert key is session.id
    # every SUCCESS in every answer is one int, also in an answer kept after these
    codes = {id(v) for kept in session.answers for v in (kept[3], kept[5])}
    assert codes == {id(kept_answer(done.answer)[3])}
