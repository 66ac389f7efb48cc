"""How the VoltDB adapter maps what the client reports to the port's errors, and when it retries:
scripted connections instead of a server (the real server runs in tests/contract)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from cellcelly.adapters.balance_voltdb import (
    SUCCESS,
    USER_ABORT,
    VERSION_CONFLICT,
    CommitOutcomeUnknown,
    VoltBalanceStore,
    VoltUnavailable,
    parse_servers,
)
from cellcelly.codec import header_to_list
from cellcelly.domain.account import Account, Status
from cellcelly.errors import ConflictError, StoreError
from cellcelly.ports.balance_store import Commit

pytestmark = pytest.mark.unit

MSISDN = "5320000001"


@dataclass
class Table:
    tuples: list[list[Any]]


@dataclass
class Answer:
    status: int = SUCCESS
    tables: list[Table] | None = None
    statusString: str | None = None  # noqa: N815 - the client's names
    appStatus: int = -128
    appStatusString: str | None = None  # noqa: N815
    version: int = 0


NO_ANSWER = Answer(status=-1, statusString="Connection broken", version=-1)  # what the client makes up
CONFLICT = Answer(USER_ABORT, None, "VOLTDB ERROR: USER ABORT version conflict", VERSION_CONFLICT, "at 2")


def account_answer(wallet: int, version: int) -> Answer:
    account = Account(MSISDN, Status.ACTIVE, wallet)
    header = orjson.dumps(header_to_list(account)).decode()
    return Answer(tables=[Table([[version, header]]), Table([])])


@dataclass
class Script:
    """Answers per procedure, in order (an exception is raised instead of answered)."""

    answers: dict[str, list[Answer | BaseException]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    opened: int = 0
    closed: int = 0

    def connect(self, host: str, port: int, timeout: float) -> FakeConnection:
        self.opened += 1
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, script: Script) -> None:
        self.script = script

    def call(self, procedure: str, params: Sequence[Any]) -> Answer:
        self.script.calls.append(procedure)
        if procedure == "BalanceOutboxSize" and not self.script.answers.get(procedure):
            return Answer(tables=[Table([[0]])])
        answer = self.script.answers[procedure].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self.script.closed += 1


def store_on(script: Script, **kwargs: Any) -> VoltBalanceStore:
    return VoltBalanceStore("a:1,b:2", connect=script.connect, **kwargs)


def top_up(amount: int) -> Callable[[Account | None], tuple[int, Commit]]:
    def fn(account: Account | None) -> tuple[int, Commit]:
        assert account is not None
        new = account.copy()
        new.wallet += amount
        return new.wallet, Commit(new)

    return fn


def test_servers_are_parsed_with_the_default_port() -> None:
    assert parse_servers("h1:1, h2 ,") == [("h1", 1), ("h2", 21212)]
    assert parse_servers(["h:5"]) == [("h", 5)]
    with pytest.raises(ValueError):
        parse_servers(" , ")


def test_a_refused_connection_is_voltunavailable_naming_every_server() -> None:
    def refuse(host: str, port: int, timeout: float) -> FakeConnection:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(VoltUnavailable, match=r"a:1: .*refused.*b:2: .*refused") as caught:
        VoltBalanceStore("a:1,b:2", connect=refuse)
    assert isinstance(caught.value, StoreError)


def test_a_database_without_the_schema_is_refused_with_how_to_load_it() -> None:
    script = Script({"BalanceOutboxSize": [Answer(-3, None, "Procedure BalanceOutboxSize was not found")]})
    with pytest.raises(StoreError, match="ensure_schema"):
        store_on(script)
    assert script.closed == script.opened  # nothing left open


def test_a_read_without_answer_is_retried_once_on_a_new_connection() -> None:
    script = Script({"BalanceGet": [NO_ANSWER, account_answer(500, 3)]})
    store = store_on(script)
    account = store.get(MSISDN)
    assert account is not None and account.wallet == 500
    assert script.calls == ["BalanceOutboxSize", "BalanceGet", "BalanceGet"]
    assert script.opened == 2 and script.closed == 1  # the silent connection is not reused


def test_a_read_without_answer_twice_is_voltunavailable() -> None:
    script = Script({"BalanceGet": [NO_ANSWER, OSError(32, "Broken pipe")]})
    store = store_on(script)
    with pytest.raises(VoltUnavailable, match="did not answer BalanceGet .*Broken pipe"):
        store.get(MSISDN)


def test_a_version_conflict_runs_fn_again_on_the_new_account() -> None:
    script = Script(
        {
            "BalanceGet": [account_answer(100, 1), account_answer(150, 2)],
            "BalanceCommit": [CONFLICT, Answer(tables=[Table([[3]])])],
        }
    )
    store = store_on(script)
    assert store.transact(MSISDN, top_up(5)) == 155
    assert store.conflicts == 1
    assert script.calls[1:] == ["BalanceGet", "BalanceCommit", "BalanceGet", "BalanceCommit"]
    assert script.opened == 1  # a conflict is an answer: the connection is fine


def test_losing_every_race_is_a_conflicterror() -> None:
    script = Script(
        {"BalanceGet": [account_answer(100, n) for n in range(3)], "BalanceCommit": [CONFLICT] * 3}
    )
    with pytest.raises(ConflictError):
        store_on(script, max_attempts=3).transact(MSISDN, top_up(5))


def test_a_commit_without_answer_is_not_retried() -> None:
    script = Script({"BalanceGet": [account_answer(100, 1)], "BalanceCommit": [NO_ANSWER]})
    store = store_on(script)
    runs: list[int] = []

    def fn(account: Account | None) -> tuple[int, Commit]:
        runs.append(1)
        return top_up(5)(account)

    with pytest.raises(CommitOutcomeUnknown, match="may or may not have been applied"):
        store.transact(MSISDN, fn)
    assert runs == [1] and script.calls.count("BalanceCommit") == 1


def test_another_failure_is_a_storeerror_and_keeps_the_connection() -> None:
    failed = Answer(-2, None, "VOLTDB ERROR: CONSTRAINT VIOLATION\nmore lines")
    script = Script({"BalanceSessionOwner": [failed, Answer(tables=[Table([[MSISDN]])])]})
    store = store_on(script)
    with pytest.raises(StoreError, match=r"status -2: VOLTDB ERROR: CONSTRAINT VIOLATION$"):
        store.session_owner("s1")
    assert store.session_owner("s1") == MSISDN
    assert script.opened == 1


def test_a_commit_for_another_subscriber_is_refused() -> None:
    script = Script({"BalanceGet": [account_answer(100, 1)]})

    def other(account: Account | None) -> tuple[None, Commit]:
        return None, Commit(Account("5329999999", Status.ACTIVE, 0))

    with pytest.raises(StoreError, match="inside a transaction"):
        store_on(script).transact(MSISDN, other)
    assert "BalanceCommit" not in script.calls


def test_after_close_nothing_is_called() -> None:
    script = Script()
    store = store_on(script)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.outbox_size()
    assert script.closed == 1
