"""`account.Sessions`: read as a dict, copied cheaply, and no copy ever changes another.

charge() copies the account it is given and must not change it; the finished sessions' windows
are shared between the copies, so a change through one copy reaching another would be a change to
a committed account (or to the one a concurrent charge is working from)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcelly.domain.account import FINISHED_WINDOW, Session, Sessions

pytestmark = pytest.mark.unit

T0 = 1_800_000_000


def session(sid: str, finished_at: int | None) -> Session:
    return Session(sid, 0, T0, "90", finished_at=finished_at)


ids = st.sampled_from([f"s{i}" for i in range(12)])
ends = st.one_of(st.none(), st.integers(min_value=T0, max_value=T0 + 5 * FINISHED_WINDOW))
which = st.integers(min_value=0, max_value=7)  # the copy an operation goes to (modulo how many)
operations = st.lists(
    st.one_of(
        st.tuples(which, st.just("set"), ids, ends),
        st.tuples(which, st.just("del"), ids, st.none()),
        st.tuples(which, st.just("copy"), st.none(), st.none()),
        st.tuples(
            which, st.just("forget"), st.integers(min_value=0, max_value=6 * FINISHED_WINDOW), st.none()
        ),
    ),
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(operations)
def test_every_copy_reads_as_the_dict_it_was_and_changes_alone(
    ops: list[tuple[int, str, object, object]],
) -> None:
    # each copy beside the dict it must read as; every operation goes to one of them, the original
    # included, and copies are made of copies
    copies: list[tuple[Sessions, dict[str, Session]]] = [(Sessions(), {})]
    for k, kind, a, b in ops:
        sessions, model = copies[k % len(copies)]
        if kind == "set":
            assert isinstance(a, str)
            assert b is None or isinstance(b, int)
            sessions[a] = model[a] = session(a, b)
        elif kind == "del":
            assert isinstance(a, str)
            if a in model:
                del sessions[a]
                del model[a]
            else:
                with pytest.raises(KeyError):
                    del sessions[a]
        elif kind == "copy":
            copies.append((sessions.copy(), dict(model)))
        else:
            assert isinstance(a, int)
            moment = T0 + a
            gone = sessions.forget_ended_before(moment)
            expected = {
                sid
                for sid, s in model.items()
                if s.finished_at is not None
                and s.finished_at - s.finished_at % FINISHED_WINDOW + FINISHED_WINDOW <= moment
            }
            assert set(gone) == expected and len(gone) == len(expected)
            for sid in expected:
                del model[sid]
        for each, each_model in copies:
            assert dict(each.items()) == each_model
            assert each == each_model and len(each) == len(each_model)
            assert set(each) == set(each_model) == set(each.keys())
            assert list(each.values()) == [each_model[sid] for sid in each]
            assert each.live == {sid: s for sid, s in each_model.items() if s.finished_at is None}
            # the oldest window's, however out of time order the sessions ended (a clock stepped back)
            starts = [
                s.finished_at - s.finished_at % FINISHED_WINDOW
                for s in each_model.values()
                if s.finished_at is not None
            ]
            assert each.forget_at(300) == (min(starts) + FINISHED_WINDOW + 300 if starts else None)
            for sid in (f"s{i}" for i in range(12)):
                assert each.get(sid) is each_model.get(sid)
                assert (sid in each) == (sid in each_model)


def test_a_finished_session_is_kept_for_its_window_and_forgotten_with_it() -> None:
    sessions = Sessions()
    start = T0 - T0 % FINISHED_WINDOW
    sessions["a"] = session("a", start)
    sessions["b"] = session("b", start + FINISHED_WINDOW - 1)
    sessions["c"] = session("c", start + FINISHED_WINDOW)  # the next window
    sessions["live"] = session("live", None)
    assert sessions.forget_at(300) == start + FINISHED_WINDOW + 300
    assert sessions.forget_ended_before(start + FINISHED_WINDOW - 1) == []
    assert sorted(sessions.forget_ended_before(start + FINISHED_WINDOW)) == ["a", "b"]
    assert sorted(sessions) == ["c", "live"]
    assert sessions.forget_at(300) == start + 2 * FINISHED_WINDOW + 300


def test_a_live_session_that_finished_is_settled_into_its_window() -> None:
    sessions = Sessions()
    sessions["s"] = live = session("s", None)
    live.finished_at = T0  # charging finishes the session it holds
    sessions.settle("s")
    assert sessions.live == {} and sessions["s"] is live
    assert sessions.forget_ended_before(T0 + FINISHED_WINDOW) == ["s"]


def test_a_copy_shares_the_windows_until_one_side_changes_one() -> None:
    original = Sessions.of({f"f{i}": session(f"f{i}", T0 + i) for i in range(3)})
    copy = original.copy()
    original["early"] = session("early", T0)  # the original changes first: its window was shared
    assert "early" not in copy
    copy["new"] = session("new", T0 + 1)
    del copy["f0"]
    assert sorted(original) == ["early", "f0", "f1", "f2"]
    assert sorted(copy) == ["f1", "f2", "new"]
    original["late"] = session("late", T0 + 2)
    assert "late" not in copy
