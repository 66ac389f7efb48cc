"""The embedded balance store: accounts in memory, every commit journalled to disk.

Durability follows VoltDB's command log: each commit is written to the journal (and so survives
a crash of this process) before it becomes visible or is answered; `fsync` decides when the
operating system is made to put it on the disk: "always" (before answering), "interval" (by a
background thread every `fsync_interval` seconds, the default, like VoltDB's asynchronous
command logging) or "never". When the journal grows past `compact_bytes`, or past the last
snapshot's size when that is larger, a snapshot of every account and the unacknowledged outbox is
written beside it and the journal starts afresh. The second bound is Redis's for its append-only
file (`auto-aof-rewrite-percentage 100`): a snapshot costs in proportion to the state, so one every
fixed size of journal made its share of a commit grow with the state (at 10,000 CCR/s, one every
30 s whatever the state held); one per its own size of journal keeps that share constant, and
recovery replays at most about a snapshot's worth of journal.

The snapshot is written by another process (`snapshot_in="process"`, the default), the
checkpointer (`balance_checkpointer`), which builds it from the files it replaces, as recovery
would. From a thread, the serialisation (about 100 µs an account) took the GIL from charging
while it ran: p99 68-428 ms against 6-86 ms from another process, snapshots forced every 16 MB
of journal at 1,500-2,000 sessions/s; and a forked copy of this process, as Redis's BGSAVE, had
every page charging wrote after the fork copied, the p99 of a five-minute run at 10,000 CCR/s
(docs/performance-log.md).

The journal is written through a memory map of blocks allocated ahead (`JOURNAL_CHUNK`): a record
is a copy into the page cache, as a `write` would have put it there, without the system call. The
allocation past the records is cut at rotation and close; a crash leaves it, and recovery cuts it.
A journal whose last record was torn by a crash is cut back to the last whole record; damage
anywhere else refuses to open rather than guess.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import orjson

from cellcelly.adapters.balance_checkpointer import Checkpointer
from cellcelly.adapters.balance_files import (
    JOURNAL,
    ROTATED,
    SNAPSHOT,
    Outbox,
    Replica,
    commit_line,
    commit_parts,
    cut_allocated_tail,
    event_of,
    write_snapshot,
)
from cellcelly.codec import (
    account_to_dict,
    event_to_dict,
    header_from_list,
    header_to_list,
    journal_event,
    kept_to_list,
    session_from_list,
    session_to_list,
)
from cellcelly.domain.account import Account, Sessions
from cellcelly.errors import StoreError
from cellcelly.ports.balance_store import Commit, Event, OutboxEntry

log = logging.getLogger(__name__)
T = TypeVar("T")
FsyncMode = Literal["always", "interval", "never"]
SnapshotIn = Literal["process", "thread"]
# what a snapshot holds: the last seq, the last acknowledged one, the accounts, the outbox
State = tuple[int, int, list[Account], list[tuple[int, Event]]]

_STRIPES = 256
# what the journal allocates and maps at a time: a commit's record is copied into the map, with no
# system call (a `write` was 5-7 µs of a commit's CPU after its Python, the copy ~2: docs)
JOURNAL_CHUNK = 64 * 1024 * 1024
COMPACTION_RETRY_SECONDS = 30.0  # after a snapshot failed (a full disk): not a try every commit


def _lengthen(fd: int, offset: int, length: int) -> None:
    """Where there is no `posix_fallocate` (macOS): the file made long enough, its blocks not
    allocated, so there a full disk is met by the copy (a SIGBUS), not by this call."""
    if os.fstat(fd).st_size < offset + length:
        os.ftruncate(fd, offset + length)


class EmbeddedBalanceStore:
    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        fsync: FsyncMode = "interval",
        fsync_interval: float = 0.2,
        compact_bytes: int = 256 * 1024 * 1024,
        snapshot_in: SnapshotIn | None = None,
        checkpoint_cpu_share: float = 1.0,
        journal_chunk: int = JOURNAL_CHUNK,
    ) -> None:
        self._accounts: dict[str, Account] = {}
        self._sessions: dict[str, str] = {}  # session id -> msisdn
        self._outbox: Outbox[Event] = Outbox()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._write_lock = threading.Lock()
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._compact_at = compact_bytes  # the journal's size that starts a snapshot (see above)
        # where a background snapshot is written: the checkpointer process, or a thread of this one
        self._snapshot_in: SnapshotIn = snapshot_in or "process"
        # its process starts with the first snapshot; made here, so that `close` always ends it
        self._checkpointer = (
            None if directory is None else Checkpointer(Path(directory), checkpoint_cpu_share)
        )
        self._dirty = False
        self._closed = threading.Event()
        self._dir = None if directory is None else Path(directory)
        self._fd = -1
        self._journal_size = 0  # the end of its records; the file is longer while open (allocated)
        self._journal_chunk = journal_chunk
        self._map: mmap.mmap | None = None  # the journal's bytes from `_map_start` to `_map_end`
        self._map_start = 0
        self._map_end = 0
        # the journal's system calls, as attributes so tests can make them fail as a full or broken
        # disk would (tests/contract/test_balance_embedded.py)
        self._os_fallocate = getattr(os, "posix_fallocate", _lengthen)
        self._os_fsync = os.fsync
        self._os_replace = os.replace  # the snapshot's rename: tests hold it back or make it fail
        self._compactor: threading.Thread | None = None  # writing a snapshot from a copy
        self._next_compaction = 0.0  # after a failed snapshot, not before this (monotonic)
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._recover()
            self._open_journal()
            if fsync == "interval":
                threading.Thread(
                    target=self._syncer, args=(fsync_interval,), daemon=True, name="journal-sync"
                ).start()

    # --- reads ----------------------------------------------------------------------------------

    inline = True  # in memory: an event loop calls it directly (the *_async forms only delegate)

    def get(self, msisdn: str) -> Account | None:
        return self._accounts.get(msisdn)

    def session_owner(self, session_id: str) -> str | None:
        return self._sessions.get(session_id)

    def msisdns(self) -> Iterator[str]:
        return iter(list(self._accounts))

    def outbox_parts(self) -> list[str]:
        return [""]  # one part: the whole outbox

    def outbox(self, limit: int = 1000, after: int = 0, part: str | None = None) -> list[OutboxEntry]:
        with self._write_lock:
            found: list[OutboxEntry] = []
            if limit <= 0:
                return found
            events = self._outbox.events
            for seq in self._outbox.order:
                if seq > after and seq in events:
                    found.append(OutboxEntry(seq, event_to_dict(events[seq])))
                    if len(found) >= limit:
                        break
            return found

    def outbox_size(self) -> int:
        return len(self._outbox.events)

    # --- writes ---------------------------------------------------------------------------------

    def transact(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        # crc32, not hash(): str hashes change from process to process (PYTHONHASHSEED), and which
        # subscribers share a lock should not
        with self._stripes[zlib.crc32(msisdn.encode()) % _STRIPES]:
            result, commit = fn(self._accounts.get(msisdn))
            if commit is not None:
                if commit.account.msisdn != msisdn:
                    raise StoreError(f"a commit for {commit.account.msisdn} inside a transaction on {msisdn}")
                self._commit(commit)
            return result

    def ack(self, seqs: Iterable[int], part: str | None = None) -> None:
        with self._write_lock:
            outbox = self._outbox
            wanted = sorted({s for s in seqs if s in outbox.events})
            if not wanted:
                return
            # the usual case, the front of the outbox: one short "everything up to" record
            front = outbox.takes_the_front(wanted)
            self._append(orjson.dumps(["a", wanted[-1]] if front else ["k", wanted]))
            if front:
                outbox.ack_upto(wanted[-1])
            else:
                outbox.ack_exact(wanted)

    def _commit(self, commit: Commit) -> None:
        account = commit.account
        sessions = account.sessions
        before = self._accounts.get(account.msisdn)
        old_sessions = before.sessions if before is not None else Sessions()
        changed = []
        for sid in commit.changed_sessions:
            session = sessions.get(sid)
            if session is None:
                continue
            # only answers new in this commit are written, with the request numbers still kept
            old = old_sessions.get(sid)
            old_answers = old.answers if old is not None else ()
            new = [kept_to_list(a) for a in session.answers if a not in old_answers]
            changed.append([session_to_list(session, new), [a[2] for a in session.answers]])
        removed = list(commit.removed_sessions)
        events = commit.events
        parts = commit_parts(
            account.msisdn, removed, changed, header_to_list(account), [journal_event(e) for e in events]
        )
        with self._write_lock:
            outbox = self._outbox
            first = outbox.seq + 1
            self._append(commit_line(first, len(events), parts))
            outbox.seq += len(events)
            self._accounts[account.msisdn] = account
            for sid in removed:
                self._sessions.pop(sid, None)
            for sid in commit.changed_sessions:
                self._sessions[sid] = account.msisdn
            for i, event in enumerate(events):
                outbox.add(first + i, event)
            if (
                self._journal_size > self._compact_at
                and self._compactor is None
                and time.monotonic() >= self._next_compaction
            ):
                self._compact(background=True)

    def _append(self, payload: bytes) -> None:
        """The record copied into the journal's map: in the page cache when this returns, as a
        `write` would have put it (a crash of this process keeps it; `fsync` the disk)."""
        if self._fd < 0:
            return
        line = payload + b"\n"
        start = self._journal_size
        end = start + len(line)
        try:
            if end > self._map_end:
                self._map_more(start, end)
            journal = self._map
            assert journal is not None
            at = start - self._map_start
            journal[at : at + len(line)] = line
            if self._fsync == "always":
                try:
                    self._os_fsync(self._fd)
                except OSError:
                    # not answered, so not kept: zeros where it was are the end of the journal,
                    # and the next record takes their place
                    journal[at : at + len(line)] = bytes(len(line))
                    raise
        except OSError as exc:
            raise StoreError(f"cannot write the balance journal: {exc}") from exc
        self._journal_size = end
        self._dirty = True

    def _map_more(self, start: int, end: int) -> None:
        """The journal mapped from `start`'s page on, at least to `end`: its blocks allocated
        first, so a full disk is this OSError and never a SIGBUS in a copy."""
        base = start - start % mmap.ALLOCATIONGRANULARITY
        length = max(self._journal_chunk, end - base)
        self._os_fallocate(self._fd, base, length)
        old, self._map = self._map, mmap.mmap(self._fd, length, offset=base)
        self._map_start, self._map_end = base, base + length
        if old is not None:
            old.close()

    def _unmap(self) -> bool:
        """The map closed and the file cut to its records (before a rotation or a close): what was
        allocated past them goes. False if the cut failed: the zeros stay, which recovery cuts
        (`cut_allocated_tail`) but a rotated journal must not hold (the checkpointer reads it)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        self._map_start = self._map_end = self._journal_size
        try:
            os.ftruncate(self._fd, self._journal_size)
        except OSError:
            log.exception("cannot cut the balance journal's allocation past its records")
            return False
        return True

    @property
    def journal_size(self) -> int:
        """The bytes of records in the live journal (its file is longer while open: allocated)."""
        return self._journal_size

    def _open_journal(self) -> None:
        """The journal, to append to (recovery cut it to its last whole record)."""
        assert self._dir is not None
        self._fd = os.open(self._dir / JOURNAL, os.O_RDWR | os.O_CREAT, 0o600)
        self._journal_size = os.fstat(self._fd).st_size
        self._map_start = self._map_end = self._journal_size

    def _syncer(self, interval: float) -> None:
        while not self._closed.wait(interval):
            if self._dirty:
                self._dirty = False
                try:
                    os.fsync(self._fd)
                except OSError:
                    log.exception("journal fsync failed")

    # --- snapshot and recovery ------------------------------------------------------------------

    def _compact(self, background: bool = False) -> None:
        """Snapshot everything and start an empty journal (called with the write lock held).

        Only the journal's rotation (and, from a thread, the copy of the state) happens here, under
        the lock: a few ms. The rotated journal's last records are put on the disk after, with the
        snapshot (under the lock, that `fsync` held every commit back 1-2 ms a snapshot). The
        snapshot is written after, when `background` by the checkpointer process or a thread of its
        own (`snapshot_in`): written under the lock, charging waited 1.4-1.8 s for it at 10,000
        accounts (`make bench`'s e2e rows, docs/performance-log.md). Committed accounts and events are
        never changed in place (a commit replaces them), so the thread's copy is of references."""
        assert self._dir is not None
        by_checkpointer = background and self._snapshot_in == "process"
        state = None if by_checkpointer else self._state()
        rotated = -1
        journal_bytes = -1  # of the live journal, the snapshot also covers
        if not (self._dir / ROTATED).exists():
            if not self._unmap():  # the rotated journal is to end with its last record
                if not background:
                    raise StoreError("cannot cut the balance journal before its rotation")
                self._next_compaction = time.monotonic() + COMPACTION_RETRY_SECONDS
                return
            os.replace(self._dir / JOURNAL, self._dir / ROTATED)  # the open descriptor follows it
            rotated = self._fd
            self._open_journal()
        else:
            # the last snapshot was not written: this one covers the rotated journal and what the
            # journal holds so far, which stays (replaying it again is safe)
            journal_bytes = self._journal_size
        if not background:
            self._finish_compaction(state, rotated)
            return
        self._compactor = threading.Thread(
            target=self._finish_compaction,
            args=(state, rotated, True, journal_bytes),
            daemon=True,
            name="journal-compaction",
        )
        self._compactor.start()

    def _state(self) -> State:
        outbox = self._outbox
        return outbox.seq, outbox.acked, list(self._accounts.values()), outbox.entries()

    def _finish_compaction(
        self, state: State | None, rotated: int, background: bool = False, journal_bytes: int = -1
    ) -> None:
        """The snapshot of `state`, or (None) the checkpointer's of the files."""
        assert self._dir is not None
        try:
            if rotated >= 0:
                try:  # what the interval's fsync had not reached yet, before the snapshot counts
                    self._os_fsync(rotated)
                finally:
                    os.close(rotated)
            if state is None:
                assert self._checkpointer is not None
                self._checkpointer.compact(journal_bytes)
            else:
                self._write_snapshot(state)
            (self._dir / ROTATED).unlink(missing_ok=True)
            size = self._snapshot_taken()
            log.info("balance journal compacted", extra={"snapshot_bytes": size})
        except Exception:
            if not background:
                raise
            # the rotated journal stays, and a commit past the size after the pause tries again
            self._next_compaction = time.monotonic() + COMPACTION_RETRY_SECONDS
            if self._closed.is_set():
                log.info("balance snapshot left unwritten by the store's close; the rotated journal is kept")
            else:
                log.exception("balance snapshot could not be written; the rotated journal is kept")
        finally:
            if background:
                self._compactor = None

    def _snapshot_taken(self) -> int:
        """The snapshot's size, which the journal is to reach before the next one (see above)."""
        assert self._dir is not None
        size = (self._dir / SNAPSHOT).stat().st_size
        self._compact_at = max(self._compact_bytes, size)
        return size

    def _write_snapshot(self, state: State) -> None:
        assert self._dir is not None
        seq, acked, accounts, outbox = state
        write_snapshot(
            self._dir,
            seq,
            acked,
            (orjson.dumps(account_to_dict(a)) for a in accounts),
            [(n, event_to_dict(e)) for n, e in outbox],
            self._os_replace,
        )

    def settle(self) -> None:
        """Wait for a snapshot being written in the background (`close` does)."""
        compactor = self._compactor
        if compactor is not None:
            compactor.join()

    def compact(self) -> None:
        with self._write_lock:
            if self._dir is not None:
                self.settle()
                self._compact()

    def _recover(self) -> None:
        """The snapshot and the journals after it, read as lists, then each account made once."""
        assert self._dir is not None
        replica = Replica()
        if replica.load_snapshot(self._dir / SNAPSHOT):
            self._snapshot_taken()
        cut = cut_allocated_tail(self._dir / JOURNAL)  # a crash left the allocation (`_map_more`)
        if cut:
            log.info("the journal's allocation past its records cut", extra={"bytes": cut})
        records = 0
        for name in (ROTATED, JOURNAL):
            if (self._dir / name).exists():
                records += replica.replay_journal(self._dir / name, cut_torn=True)
        try:
            for header, sessions in replica.accounts():
                account = header_from_list(
                    header, Sessions.of({s[0]: session_from_list(s) for s in sessions})
                )
                self._accounts[account.msisdn] = account
                for s in sessions:
                    self._sessions[s[0]] = account.msisdn
            outbox = self._outbox
            outbox.seq, outbox.acked = replica.outbox.seq, replica.outbox.acked
            for seq, raw in replica.outbox.entries():
                outbox.add(seq, event_of(raw))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise StoreError(f"balance store files damaged: {exc!r}") from exc
        log.info(
            "balance store recovered", extra={"accounts": len(self._accounts), "journal_records": records}
        )

    async def get_async(self, msisdn: str) -> Account | None:
        return self.get(msisdn)

    async def session_owner_async(self, session_id: str) -> str | None:
        return self.session_owner(session_id)

    async def transact_async(self, msisdn: str, fn: Callable[[Account | None], tuple[T, Commit | None]]) -> T:
        return self.transact(msisdn, fn)

    async def outbox_parts_async(self) -> list[str]:
        return self.outbox_parts()

    async def outbox_async(
        self, limit: int = 1000, after: int = 0, part: str | None = None
    ) -> list[OutboxEntry]:
        return self.outbox(limit, after)

    async def outbox_size_async(self) -> int:
        return self.outbox_size()

    async def ack_async(self, seqs: Iterable[int], part: str | None = None) -> None:
        self.ack(seqs)

    def close(self) -> None:
        self._closed.set()
        if self._checkpointer is not None:
            # a snapshot under way is not waited for (seconds of replay and writing): the journal
            # it was to replace stays, and the next start replays it
            self._checkpointer.close()
        self.settle()
        with self._write_lock:
            if self._fd >= 0:
                self._unmap()
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> EmbeddedBalanceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
