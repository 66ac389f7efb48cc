"""The balance store on VoltDB (10.1.1 community edition), through the pure-Python `voltdbclient`.

Where the charging logic runs. It stays in Python (the pure `fn` of `transact`), so the store
does optimistic concurrency: `BalanceGet` (single-partition) reads the account and its version,
`fn` computes the new account, and `BalanceCommit` (single-partition, Java) checks that the
version is unchanged and writes the account header, the changed and dropped sessions and the
outbox events in one transaction. On a version conflict it aborts with an app status, and `fn`
runs again on the newer account (it is pure, so that is safe). Inside one process a lock per
subscriber serialises transactions first, so threads of one OCS do not waste each other's work;
the version check is what makes several OCS processes safe.

Schema (`voltdb/schema.sql`): every table is partitioned on the MSISDN, so all one commit touches
lives in one partition. Bodies are the codec's JSON forms (`header_to_list`, `session_to_list`,
`event_to_dict`). The procedures' Java sources are package data (`voltdb/procedures/`); the jar
is compiled by `scripts/voltdb.sh jar OUT` and loaded, with the DDL, by `ensure_schema`.

Session ownership. `session_owner` finds a session's subscriber from its id alone. The session
rows are partitioned by MSISDN (so the commit writes them atomically with the account) and have
an index on the session id; the lookup is a multi-partition read (`BalanceSessionOwner`). The
alternative, a second table partitioned on the session id, would need a second single-partition
call on every commit that opens or forgets a session, on the charging path, with a window in
which the two disagree. The lookup is only needed for requests that carry no subscriber id (a
CCR-U/T without Subscription-Id; `ChargingService.charge`), so a read that costs more but is
exact, and costs nothing on commits, is the better trade. If that path ever becomes hot: a
session-partitioned table written *before* the commit (a crash leaves an owner whose account
lacks the session, which answers 5002, as it should) and deleted *after* it.

Outbox order and acknowledgement. VoltDB has no cheap global commit order across partitions.
An event's `seq` is `uid << 10 | idx`: `uid` is the committing transaction's VoltDB unique id
(unique cluster-wide, increasing within a partition, roughly time-ordered across partitions),
`idx` the event's place in its commit. So seqs increase in commit order for each subscriber (the
only order a consumer can rely on: the bus is keyed by MSISDN), but an event committed on another
partition after an outbox read can carry a *smaller* seq than events that read returned. Hence
`ack` takes the exact seqs that were published (`BalanceOutboxAck` deletes those rows and no
others); "everything up to seq" would delete such an event unpublished. `outbox(after=...)` is a
filter, not a cursor that is sure to see every later event.

The relay reads and acknowledges a partition at a time (`outbox_parts` are the keys
`@GetPartitionKeys` gives, one per partition; `BalanceOutboxReadPart`, `BalanceOutboxAckPart`):
single-partition transactions, which stop no other site. The whole-outbox read and acknowledgement
are multi-partition: each stops every site for its fragments; with them on the relay's path the
server spent a third more CPU a charge (alternated runs, docs/performance-log.md). They stay for tools
and tests.

Errors. A server that does not answer (refused, closed, timed out) is `VoltUnavailable`, a
`StoreError`; reads are retried once on a fresh connection first. A commit whose answer was lost
is `CommitOutcomeUnknown`: it may or may not have been applied, and it is not retried here,
because running `fn` again on an account that already has its effect would apply it twice; the
caller's retry (the same request number, the same top-up reference) is idempotent in the domain.
A conflict that keeps losing `max_attempts` times is `ConflictError`.

Durability is the server's: with command logging off (it is an Enterprise feature; the community
server here has only snapshots), a server crash loses what was committed since the last snapshot.
`cellcelly reconcile` rebuilds the balances from the system of record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from cellcelly.adapters.voltdb_blocking import (
    PROCEDURES,
    Client,
    Connect,
    Connection,
    Response,
    VoltConnection,
)
from cellcelly.adapters.voltdb_wire import AsyncVoltClient, CannotConnect, NoAnswer
from cellcelly.codec import (
    event_to_dict,
    header_from_list,
    header_to_list,
    session_from_list,
    session_to_list,
)
from cellcelly.domain.account import Account, Sessions
from cellcelly.errors import ConflictError, StoreError
from cellcelly.ports.balance_store import Commit, OutboxEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PORT = 21212
IDX_BITS = 10
MAX_EVENTS_PER_COMMIT = 1 << IDX_BITS
_IDX_MASK = MAX_EVENTS_PER_COMMIT - 1
_ARRAY_CHUNK = 2_000  # the client writes an array's length as a 16-bit number
_MSISDN_PAGE = 1_000

# ClientResponse statuses and BalanceCommit's app statuses
SUCCESS = 1
USER_ABORT = -1
VERSION_CONFLICT = 1

SCHEMA_DIR = resources.files("cellcelly.adapters") / "voltdb"


class VoltUnavailable(StoreError):
    """No answer from VoltDB: refused, connection lost, or timed out."""


class VoltSchemaMissing(StoreError):
    """The database answers but has no CellCelly schema: load it (`ensure_schema`), or wait for the
    process that is loading it."""


class CommitOutcomeUnknown(VoltUnavailable):
    """A commit was sent and its answer lost: it may or may not have been applied."""


class _Conflict(Exception):
    """BalanceCommit found the account at another version than the one `fn` saw."""


class _NoAnswer(Exception):
    """The call got no answer; its connection is not to be used again."""


def parse_servers(servers: str | Sequence[str]) -> list[tuple[str, int]]:
    """ "host:port,host:port" (or a list of them) into (host, port) pairs; the port defaults to 21212."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    parsed = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        parsed.append((host, int(port)) if sep else (item, DEFAULT_PORT))
    if not parsed:
        raise ValueError(f"no VoltDB server in {servers!r}")
    return parsed


class _Pool:
    """Connections made on demand (one per concurrent caller), kept for reuse; a connection that
    lost its server is closed, never reused (its byte stream may hold a late answer)."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        connect: Connect,
        timeout: float,
        keep: int,
        login: dict[str, str],
    ) -> None:
        self._servers = servers
        self._connect = connect
        self._login = login
        self._timeout = timeout
        self._keep = keep
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._next = 0
        self._closed = False

    def _open(self) -> Connection:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self._servers)
        problems = []
        for i in range(len(self._servers)):
            host, port = self._servers[(start + i) % len(self._servers)]
            try:
                return self._connect(host, port, self._timeout, **self._login)
            except (OSError, RuntimeError) as exc:  # refused, reset, authentication failed
                problems.append(f"{host}:{port}: {exc}")
        raise VoltUnavailable("cannot connect to VoltDB (" + "; ".join(problems) + ")")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one call; if the call raises, the connection is closed, not reused."""
        with self._lock:
            if self._closed:
                raise StoreError("the VoltDB balance store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if not self._closed and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _SubscriberLocks:
    """One lock per subscriber with a transaction in this process (not striped: two subscribers
    must never wait for each other), dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, msisdn: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.get(msisdn)
            if entry is None:
                entry = self._locks[msisdn] = (threading.Lock(), [0])
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1][0] -= 1
                if entry[1][0] == 0:
                    del self._locks[msisdn]


class _AsyncSubscriberLocks:
    """`_SubscriberLocks` for coroutines: one FIFO of waiters per subscriber with a transaction on
    the loop. The threads' locks and these do not exclude each other; the version check still
    makes such a race safe (one side loses it and runs `fn` again).

    Not an asyncio.Lock behind an @asynccontextmanager: on every charge that made an async
    generator (registered in the loop's weak set of them) and a lock object, ~5% of the OCS's CPU
    on VoltDB (py-spy); taking a free subscriber here is two dict operations and no await."""

    def __init__(self) -> None:
        # a subscriber is held while it has an entry; the deque holds who waits, in order
        self._held: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, msisdn: str) -> None:
        waiting = self._held.get(msisdn)
        if waiting is None:
            self._held[msisdn] = deque()
            return
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed over, then cancelled: pass it on
                self.release(msisdn)
            raise  # a cancelled turn stays queued; release skips it

    def release(self, msisdn: str) -> None:
        waiting = self._held[msisdn]
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        del self._held[msisdn]


# What this process last committed for a subscriber: (version, header body, ((session id, body),
# ...)), the bodies exactly as the store holds them, not the Account they decode to. Kept as
# objects, every kept account with its sessions and their answers was walked by the cyclic GC again
# and again (385,000 objects 10 s into the bench row, growing with the cache's up to 100,000
# accounts): its young collections took 5-25 ms and an older one 100-400 ms, each a stall of every
# charge in flight on the OCS over VoltDB (the bench row's p99). Strings, bytes and tuples of them
# are not tracked by the GC (a dict would be: a tuple holding one is never untracked), so a
# charge's Account now dies young and what is kept costs the collector nothing.
_Kept = tuple[int, str | bytes | None, tuple[tuple[str, str | bytes], ...]]


def _account(kept: _Kept) -> Account | None:
    _, header, bodies = kept
    if header is None:
        return None
    sessions = {sid: session_from_list(orjson.loads(body)) for sid, body in bodies}
    return header_from_list(orjson.loads(header), sessions)


def _stored(response: Response) -> tuple[Account | None, _Kept]:
    """The account a BalanceGet answered, and the bodies it came from."""
    tables = response.tables or []
    rows = tables[0].tuples
    if not rows:
        return None, (0, None, ())
    version, header = rows[0]
    sessions = {}
    bodies = []
    for (body,) in tables[1].tuples:
        session = session_from_list(orjson.loads(body))
        sessions[session.id] = session
        bodies.append((session.id, body))
    return header_from_list(orjson.loads(header), sessions), (int(version), header, tuple(bodies))


def _committed(before: _Kept, params: list[Any]) -> _Kept:
    """What the store holds after a BalanceCommit of `params` (`_commit_params`) on `before`: its
    header, the sessions it wrote, and the others of `before` but those it deleted."""
    _, version, header, written, bodies, dropped, _ = params
    gone = {*written, *dropped}  # each array starts with a skipped element: "" is in no account
    kept = [(sid, body) for sid, body in before[2] if sid not in gone]
    kept += zip(written[1:], bodies[1:], strict=True)
    return version + 1, header, tuple(kept)


def _text(value: Any) -> Any:
    """A commit parameter as voltdbclient takes it: str, not the bytes `_commit_params` gives."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _unanswered(procedure: str, problem: str, *, last: bool) -> None:
    """A call that got no answer: a commit's outcome is unknown (never repeated: it may have been
    applied); any other call fails when it was the `last` try, else it is tried again."""
    if procedure == "BalanceCommit":
        raise CommitOutcomeUnknown(
            f"VoltDB did not answer a commit ({problem}): it may or may not have been applied"
        )
    if last:
        raise VoltUnavailable(f"VoltDB did not answer {procedure} ({problem})")
    log.warning("VoltDB did not answer, retrying", extra={"procedure": procedure, "problem": problem})


class VoltBalanceStore:
    """Two faces on one server: the blocking calls (voltdbclient, a pool of connections, one
    thread each) for tools and threads, and the `*_async` calls for code on an event loop
    (`voltdb_wire`: pipelined connections on the loop; a retry's back-off is `asyncio.sleep`)."""

    inline = False  # calls wait on the server: an event loop must use the *_async ones

    def __init__(
        self,
        servers: str | Sequence[str] = f"127.0.0.1:{DEFAULT_PORT}",
        *,
        timeout: float = 10.0,
        max_attempts: int = 100,
        keep_connections: int = 16,
        # one: a loop turn's calls leave in one send and their answers come back on one socket;
        # with two, each turn paid two sends and two reads (the OCS's CPU per charge, A/B in
        # docs/performance-log.md); VoltDB answers a connection's calls in any order all the same
        loop_connections: int = 1,
        known_accounts: int = 100_000,
        connect: Connect = VoltConnection,
        username: str = "",
        password: str = "",
    ) -> None:
        login = {"username": username, "password": password} if username else {}
        parsed = parse_servers(servers)
        self._pool = _Pool(parsed, connect, timeout, keep_connections, login)
        self._locks = _SubscriberLocks()
        self._alocks = _AsyncSubscriberLocks()
        # subscriber -> what this process last committed for it from the loop: only ever a guess,
        # checked by the commit's version (see transact_async)
        self._known: dict[str, _Kept] = {}
        self._known_max = known_accounts

        def log_in(host: str, port: int) -> Any:
            client = Client(host, port, connect_timeout=timeout, procedure_timeout=timeout, **login)
            return client

        self._async = AsyncVoltClient(
            parsed, log_in, PROCEDURES, timeout=timeout, connections=loop_connections
        )
        self._max_attempts = max_attempts
        self.conflicts = 0  # optimistic races lost (another process committed in between)
        self.stale_guesses = 0  # transact_async's kept account was no longer the stored one
        try:
            self._call("BalanceOutboxSize", [])  # reachable, and the schema is there
        except VoltUnavailable:
            self._pool.close()
            raise
        except StoreError as exc:
            self._pool.close()
            raise VoltSchemaMissing(
                f"VoltDB at {servers} has no CellCelly schema ({exc}); load it with "
                "cellcelly.adapters.balance_voltdb.ensure_schema"
            ) from exc

    # --- calls ----------------------------------------------------------------------------------

    def _call(self, procedure: str, params: Sequence[Any], *, retry: bool = True) -> Response:
        """Call a procedure; raise a StoreError for anything but success. `retry`: the call may be
        repeated on a fresh connection when the first got no answer (reads, idempotent writes)."""
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    response = self._send(conn, procedure, params)
            except _NoAnswer as exc:
                problem = str(exc)
            else:
                return self._check(procedure, response)
            _unanswered(procedure, problem, last=not retry or attempt == 2)
        raise AssertionError("unreachable")

    @staticmethod
    def _send(conn: Connection, procedure: str, params: Sequence[Any]) -> Response:
        try:
            response = conn.call(procedure, params)
        except OSError as exc:  # broken pipe or reset while sending
            raise _NoAnswer(str(exc) or type(exc).__name__) from exc
        if response.version < 0:  # made up by the client: lost connection, timeout
            raise _NoAnswer(response.statusString or "no answer")
        return response

    @staticmethod
    def _check(procedure: str, response: Response) -> Response:
        if response.status == SUCCESS:
            return response
        if response.status == USER_ABORT and response.appStatus == VERSION_CONFLICT:
            raise _Conflict(response.appStatusString)
        detail = (response.statusString or "").splitlines()[0] if response.statusString else ""
        raise StoreError(f"VoltDB {procedure} failed with status {response.status}: {detail}")

    # --- reads ----------------------------------------------------------------------------------

    def _read(self, msisdn: str) -> tuple[Account | None, int]:
        return self._account_of(self._call("BalanceGet", [msisdn]))

    @staticmethod
    def _account_of(response: Response) -> tuple[Account | None, int]:
        account, kept = _stored(response)
        return account, kept[0]

    def get(self, msisdn: str) -> Account | None:
        return self._read(msisdn)[0]

    def session_owner(self, session_id: str) -> str | None:
        rows = (self._call("BalanceSessionOwner", [session_id]).tables or [])[0].tuples
        return str(rows[0][0]) if rows else None

    def msisdns(self) -> Iterator[str]:
        """Every subscriber, in MSISDN order, a page at a time (so writes may go on meanwhile)."""
        last = ""
        while True:
            rows = (self._call("BalanceMsisdns", [last, _MSISDN_PAGE]).tables or [])[0].tuples
            for (msisdn,) in rows:
                yield msisdn
            if len(rows) < _MSISDN_PAGE:
                return
            last = rows[-1][0]

    def outbox_parts(self) -> list[str]:
        return self._parts_of(self._call("@GetPartitionKeys", ["STRING"]))

    @staticmethod
    def _parts_of(response: Response) -> list[str]:
        return sorted(str(key) for _, key in (response.tables or [])[0].tuples)  # (PARTITION_ID, KEY)

    def outbox(self, limit: int = 1000, after: int = 0, part: str | None = None) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        return self._entries(self._call(*self._read_call(limit, after, part)), limit)

    @staticmethod
    def _read_call(limit: int, after: int, part: str | None) -> tuple[str, list[Any]]:
        params: list[Any] = [after >> IDX_BITS, after & _IDX_MASK, limit]
        if part is None:
            return "BalanceOutboxRead", params
        return "BalanceOutboxReadPart", [part, *params]

    @staticmethod
    def _entries(response: Response, limit: int) -> list[OutboxEntry]:
        tables = response.tables or []
        rows = [*tables[0].tuples, *tables[1].tuples][:limit]
        return [OutboxEntry((uid << IDX_BITS) | idx, orjson.loads(body)) for uid, idx, body in rows]

    def outbox_size(self) -> int:
        return int((self._call("BalanceOutboxSize", []).tables or [])[0].tuples[0][0])

    # --- writes ---------------------------------------------------------------------------------

    def transact(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        with self._locks.hold(msisdn):
            for attempt in range(self._max_attempts):
                account, version = self._read(msisdn)
                result, commit = fn(account)
                if commit is None:
                    return result
                if commit.account.msisdn != msisdn:
                    raise StoreError(f"a commit for {commit.account.msisdn} inside a transaction on {msisdn}")
                self._known.pop(msisdn, None)  # the loop's guess is about to be stale
                try:
                    self._commit(version, account, commit)
                except _Conflict:
                    self.conflicts += 1
                    # another process committed in between: back off a little, at random, and redo
                    time.sleep(random.uniform(0, min(0.02, 0.0005 * 2**attempt)))
                    continue
                return result
        raise ConflictError(f"{msisdn}: lost {self._max_attempts} optimistic races in a row")

    def _commit(self, version: int, before: Account | None, commit: Commit) -> None:
        params = [_text(p) for p in self._commit_params(version, before, commit)]
        self._call("BalanceCommit", params, retry=False)

    @staticmethod
    def _commit_params(version: int, before: Account | None, commit: Commit) -> list[Any]:
        account = commit.account
        sessions = account.sessions
        old = before.sessions if before is not None else Sessions()
        # what the store holds must end up equal to `account`: named sessions, plus any the
        # commit forgot to name (new ones written, vanished ones deleted)
        write = {sid for sid in commit.changed_sessions if sid in sessions}
        write.update(sid for sid in sessions if sid not in old)
        drop = {sid for sid in commit.removed_sessions if sid not in sessions}
        drop.update(sid for sid in old if sid not in sessions)
        if len(commit.events) > MAX_EVENTS_PER_COMMIT:
            raise StoreError(f"{len(commit.events)} events in one commit (at most {MAX_EVENTS_PER_COMMIT})")
        order = sorted(write)
        dumps = orjson.dumps
        # the bodies stay orjson's bytes: the loop's client frames them as they are (the blocking
        # path decodes them, `_text`); each array starts with a skipped element, as voltdbclient
        # cannot send an empty array
        return [
            account.msisdn,
            version,
            dumps(header_to_list(account)),
            ["", *order],
            [b"", *[dumps(session_to_list(sessions[sid])) for sid in order]],
            ["", *sorted(drop)],
            [b"", *[dumps(event_to_dict(e)) for e in commit.events]],
        ]

    def ack(self, seqs: Iterable[int], part: str | None = None) -> None:
        """Delete exactly these events from the outbox (unknown or already deleted ones: nothing)."""
        for procedure, params in self._ack_calls(seqs, part):
            self._call(procedure, params)

    @staticmethod
    def _ack_calls(seqs: Iterable[int], part: str | None) -> Iterator[tuple[str, list[Any]]]:
        wanted = sorted(set(seqs))
        for start in range(0, len(wanted), _ARRAY_CHUNK):
            chunk = wanted[start : start + _ARRAY_CHUNK]
            params: list[Any] = [[s >> IDX_BITS for s in chunk], [s & _IDX_MASK for s in chunk]]
            yield ("BalanceOutboxAck", params) if part is None else ("BalanceOutboxAckPart", [part, *params])

    # --- on an event loop -----------------------------------------------------------------------
    # The same operations as above, never blocking the loop: calls go over `voltdb_wire`'s
    # connections, waits are awaits. Errors map as in `_call`.

    async def _call_async(self, procedure: str, params: Sequence[Any], *, retry: bool = True) -> Response:
        for attempt in (1, 2):
            try:
                response = await self._async.send(procedure, params)
            except CannotConnect as refused:  # nothing was sent: not an unknown outcome
                raise VoltUnavailable(str(refused)) from refused
            except NoAnswer as lost:  # its own name: mypyc types a name once per function
                problem = str(lost)
            else:
                return self._check(procedure, response)
            _unanswered(procedure, problem, last=not retry or attempt == 2)
        raise AssertionError("unreachable")

    async def get_async(self, msisdn: str) -> Account | None:
        return self._account_of(await self._call_async("BalanceGet", [msisdn]))[0]

    async def session_owner_async(self, session_id: str) -> str | None:
        rows = ((await self._call_async("BalanceSessionOwner", [session_id])).tables or [])[0].tuples
        return str(rows[0][0]) if rows else None

    async def transact_async(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        """`transact` with one round trip instead of two when this process made the subscriber's
        last commit: `fn` runs on the account that commit wrote (kept in `_known`, as the embedded
        store keeps it), and the commit's version check proves it was still the stored one. A guess
        is trusted only for a commit: when `fn` on it writes nothing or raises, that proves nothing
        about the stored account, so it runs again on the account read from the server."""
        await self._alocks.acquire(msisdn)
        try:
            return await self._transact_held(msisdn, fn)
        finally:
            self._alocks.release(msisdn)

    async def _transact_held(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        known = self._known.pop(msisdn, None)  # a failure below leaves no entry to trust
        account: Account | None
        for attempt in range(self._max_attempts):
            guess = known is not None
            if known is not None:
                kept, known = known, None
                account = _account(kept)
                try:
                    result, commit = fn(account)
                except Exception:  # noqa: BLE001 - perhaps only because the guess was stale
                    continue
                if commit is None:
                    continue
            else:
                account, kept = _stored(await self._call_async("BalanceGet", [msisdn]))
                result, commit = fn(account)
                if commit is None:
                    return result
            if commit.account.msisdn != msisdn:
                raise StoreError(f"a commit for {commit.account.msisdn} inside a transaction on {msisdn}")
            version = kept[0]
            params = self._commit_params(version, account, commit)
            try:
                await self._call_async("BalanceCommit", params, retry=False)
            except _Conflict:
                if guess:  # written elsewhere since our last commit: read it, no back-off
                    self.stale_guesses += 1
                    continue
                self.conflicts += 1
                await asyncio.sleep(random.uniform(0, min(0.02, 0.0005 * 2**attempt)))
                continue
            self._remember(msisdn, _committed(kept, params))
            return result
        raise ConflictError(f"{msisdn}: lost {self._max_attempts} optimistic races in a row")

    def _remember(self, msisdn: str, kept: _Kept) -> None:
        known = self._known
        if known and len(known) >= self._known_max:
            known.pop(next(iter(known)), None)  # the least recently committed
        known[msisdn] = kept

    async def outbox_parts_async(self) -> list[str]:
        return self._parts_of(await self._call_async("@GetPartitionKeys", ["STRING"]))

    async def outbox_async(
        self, limit: int = 1000, after: int = 0, part: str | None = None
    ) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        return self._entries(await self._call_async(*self._read_call(limit, after, part)), limit)

    async def outbox_size_async(self) -> int:
        return int(((await self._call_async("BalanceOutboxSize", [])).tables or [])[0].tuples[0][0])

    async def ack_async(self, seqs: Iterable[int], part: str | None = None) -> None:
        for procedure, params in self._ack_calls(seqs, part):
            await self._call_async(procedure, params)

    async def leave_loop(self) -> None:
        """Close this store's connections on the running loop before that loop ends (a test's
        loop; a service's store is closed on its loop by `close`); the store stays usable."""
        await self._async.detach()
        await asyncio.sleep(0)  # the transports close their sockets in connection_lost

    def close(self) -> None:
        self._async.close()
        self._pool.close()

    def __enter__(self) -> VoltBalanceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- schema ----------------------------------------------------------------------------------------


def _statements(sql: str) -> list[str]:
    """The statements of a DDL file (no semicolons inside them; `--` comments dropped)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() + ";" for s in "\n".join(lines).split(";") if s.strip()]


def ensure_schema(
    servers: str | Sequence[str],
    procedures_jar: Path | bytes,
    *,
    timeout: float = 60.0,
    username: str = "",
    password: str = "",
) -> bool:
    """Load the tables, the procedure classes (`procedures_jar`, from `scripts/voltdb.sh jar`) and
    the procedures into a database that has none of them. True when it loaded them, False when
    the schema was there already (it is not compared: a changed schema needs a new database).
    With security on, `username` must be allowed DDL and @UpdateClasses (an administrator)."""
    host, port = parse_servers(servers)[0]
    try:
        conn = VoltConnection(host, port, timeout, username, password)
    except (OSError, RuntimeError) as exc:
        raise VoltUnavailable(f"cannot connect to VoltDB at {host}:{port}: {exc}") from exc
    try:

        def call(procedure: str, params: list[Any]) -> Response:
            response = conn.call(procedure, params)
            if response.status != SUCCESS:
                raise StoreError(f"{procedure} failed ({response.status}): {response.statusString}")
            return response

        tables = call("@SystemCatalog", ["TABLES"]).tables or []
        names = {row[2] for row in tables[0].tuples}  # TABLE_CAT, TABLE_SCHEM, TABLE_NAME, ...
        if "ACCOUNT" in names:
            return False
        jar = procedures_jar if isinstance(procedures_jar, bytes) else procedures_jar.read_bytes()
        began = time.monotonic()
        call("@AdHoc", ["\n".join(_statements((SCHEMA_DIR / "schema.sql").read_text(encoding="utf-8")))])
        call("@UpdateClasses", [jar, ""])  # "" not None: 10.1.1 refuses a null list of classes to delete
        call("@AdHoc", ["\n".join(_statements((SCHEMA_DIR / "procedures.sql").read_text(encoding="utf-8")))])
        log.info(
            "VoltDB schema loaded", extra={"server": f"{host}:{port}", "seconds": time.monotonic() - began}
        )
        return True
    finally:
        conn.close()
