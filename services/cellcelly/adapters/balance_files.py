"""The embedded balance store's files: the journal, the snapshot, and the state they hold.

The journal is a record a line. A commit is `c`, then, apart by tabs (which JSON as orjson writes
it never holds), its first event's seq, its number of events, and in JSON the msisdn, the ids of
the sessions it removed, the sessions it changed (each with only its new answers, and the request
numbers of the answers it keeps), the account's header and the events (`codec.journal_event`'s
form): so a replay reads only the parts it needs, and keeps the header and the events as they are
written until a snapshot wants them. `["a", seq]` is the outbox acknowledged up to `seq`,
`["k", seqs]` those alone. A journal written before holds every commit as one JSON list,
`["c", header, changed, removed, [[seq, event], ...]]`, and reads as it did.

The snapshot is one JSON object: `seq`, `acked`, every account (its header and its sessions, in
the journal's lists) and the unacknowledged outbox (each event in its versioned dict,
`codec.event_to_dict`).

`Replica` applies them as lists, without making a domain object: recovery builds each account
once, from its last lists, and the checkpointer (`balance_checkpointer`) keeps a replica and
writes the snapshots from it. Made into domain objects record by record, a replay took about as
much CPU as the charging that wrote the records (25 s of a core for 256 MB of journal); as lists,
6 s for 335 MB, most of it making and freeing the objects of parts a replica did not need; split,
2.2 s.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from cellcelly.codec import event_from_dict, event_from_journal, event_to_dict
from cellcelly.errors import StoreError
from cellcelly.ports.balance_store import Event

log = logging.getLogger(__name__)
E = TypeVar("E")

JOURNAL = "journal.log"
# the journal a compaction replaced, until the snapshot that covers it is written: recovery replays
# it before JOURNAL (its records are in that snapshot once written, and replaying them again is safe)
ROTATED = "journal.1"
SNAPSHOT = "snapshot.json"
READ_BYTES = 1 << 22  # a journal is read this much at a time
PACE_EVERY = 64  # records replayed between two calls of a replica's `pace`
# a snapshot is put on the disk this much at a time as it is written, not all at its end: 263 MB
# made durable at once is a burst in the disk's queue (the SF's and the notifier's writes were seen
# waiting in the kernel's write throttling), and the CPU of its writeback one piece the
# checkpointer's pace cannot spread
SYNC_BYTES = 8 << 20


def no_pace() -> None:
    """A replica's `pace` that never waits (recovery: the store waits for it anyway)."""


class Outbox(Generic[E]):
    """Unacknowledged events by seq, and every seq in order: acknowledged ones leave `events` at
    once and `order` when they reach its front."""

    def __init__(self) -> None:
        self.events: dict[int, E] = {}
        self.order: deque[int] = deque()
        self.seq = 0  # the last given
        self.acked = 0  # every seq up to this one is acknowledged

    def add(self, seq: int, event: E) -> None:
        self.order.append(seq)
        self.events[seq] = event

    def entries(self) -> list[tuple[int, E]]:
        events = self.events
        return [(seq, events[seq]) for seq in self.order if seq in events]

    def takes_the_front(self, seqs: list[int]) -> bool:
        """Whether acknowledging `seqs` (sorted, all unacknowledged) leaves nothing before the last
        unacknowledged: then one short "everything up to" record says it."""
        top, chosen, events = seqs[-1], set(seqs), self.events
        for seq in self.order:
            if seq > top:
                break
            if seq in events and seq not in chosen:
                return False
        return True

    def ack_upto(self, upto: int) -> None:
        order, events = self.order, self.events
        while order and order[0] <= upto:
            events.pop(order.popleft(), None)
        self.acked = max(self.acked, upto)
        self._trim()

    def ack_exact(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            self.events.pop(seq, None)
        self._trim()

    def _trim(self) -> None:
        """Drop acknowledged seqs from the front of the order; everything before it is acknowledged."""
        order, events = self.order, self.events
        while order and order[0] not in events:
            order.popleft()
        self.acked = max(self.acked, order[0] - 1 if order else self.seq)


# an outbox event of a replica as read: the `index`th of a commit's events as written (JSON bytes),
# one from a journal written before (its `journal_event` form) or from a snapshot (`event_to_dict`'s);
# read, or made into the snapshot's form, only when it is still there to be written
IN_COMMIT, FROM_JOURNAL, FROM_SNAPSHOT = 0, 1, 2
RawEvent = tuple[int, Any, int]  # (form, value, index)


def cut_allocated_tail(journal: Path) -> int:
    """Cut the zeros after the journal's last byte of a record; how many. The store allocates the
    journal ahead of its records and cuts what it did not use when it closes; after a crash the
    allocation is still there, and reading it as a torn record would copy it block after block."""
    if not journal.exists():
        return 0
    with open(journal, "r+b") as fh:
        size = end = fh.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - READ_BYTES)
            fh.seek(start)
            block = fh.read(end - start).rstrip(b"\0")
            if block:
                end = start + len(block)
                break
            end = start
        if end < size:
            fh.truncate(end)
    return size - end


def event_of(raw: RawEvent) -> Event:
    form, value, index = raw
    if form == IN_COMMIT:
        return event_from_journal(orjson.loads(value)[index])
    return event_from_journal(value) if form == FROM_JOURNAL else event_from_dict(value)


def commit_parts(
    msisdn: str, removed: list[str], changed: list[Any], header: list[Any], events: list[Any]
) -> bytes:
    """A commit's line but for its seqs (given under the store's write lock, the rest before)."""
    return b"\t".join(
        (
            orjson.dumps(msisdn),
            orjson.dumps(removed),
            orjson.dumps(changed),
            orjson.dumps(header),
            orjson.dumps(events),
        )
    )


def commit_line(first_seq: int, events: int, parts: bytes) -> bytes:
    return b"c\t%d\t%d\t%s" % (first_seq, events, parts)


class Replica:
    """The state of a snapshot and the journals after it, as the files hold it: lists."""

    def __init__(self, pace: Callable[[], None] = no_pace) -> None:
        # called every few records replayed and every account written: the checkpointer's
        # `runtime.CpuShare`, so that it works a little at a time
        self.pace = pace
        self.headers: dict[str, list[Any] | bytes] = {}  # by msisdn: `header_to_list`'s, or its JSON
        # by msisdn, by id: `session_to_list`'s, or (finished) its JSON
        self.sessions: dict[str, dict[str, list[Any] | bytes]] = {}
        self.outbox: Outbox[RawEvent] = Outbox()
        self._snapshot_seq = 0

    def load_snapshot(self, snapshot: Path) -> bool:
        """The snapshot's state, into this empty replica; whether there was one."""
        if not snapshot.exists():
            return False
        data = orjson.loads(snapshot.read_bytes())
        outbox = self.outbox
        outbox.seq, outbox.acked = data["seq"], data["acked"]
        self._snapshot_seq = data["seq"]
        for account in data["accounts"]:
            header = account["header"]
            self.headers[header[0]] = header
            self.sessions[header[0]] = {s[0]: _kept(s) for s in account["sessions"]}
        for seq, event in data["outbox"]:
            outbox.add(seq, (FROM_SNAPSHOT, event, 0))
        return True

    def replay_journal(self, journal: Path, *, upto: int | None = None, cut_torn: bool = False) -> int:
        """The records of `journal` (its first `upto` bytes) applied; how many.

        A record torn by a crash, the last, is cut out of the file when `cut_torn` (recovery);
        anything else that does not read is a StoreError: the file is left for a human to see.
        Read a block at a time: a journal is hundreds of MB."""
        records = 0
        pace = self.pace
        offset = 0  # of `content` in the file
        content = b""
        left = upto if upto is not None else -1  # bytes still to read (-1: all)
        with open(journal, "rb") as fh:
            while True:
                block = fh.read(READ_BYTES if left < 0 else min(READ_BYTES, left))
                left -= len(block) if left >= 0 else 0
                at_end = not block
                content = content + block if content else block
                start = 0
                while start < len(content):
                    end = content.find(b"\n", start)
                    if end < 0 and not at_end:
                        break  # the rest of this record is in the next block
                    try:
                        if end < 0:
                            raise ValueError("record without its end")
                        line = content[start:end]
                        if line.startswith(b"c\t"):
                            self.apply_commit_line(line)
                        else:
                            self.apply(orjson.loads(line))
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        last = end < 0 or (end == len(content) - 1 and not fh.read(1))
                        if not (last and cut_torn):
                            where = f"{journal.name} at byte {offset + start}"
                            raise StoreError(f"balance journal damaged: {where}: {exc}") from exc
                        log.warning("cutting a torn last journal record", extra={"offset": offset + start})
                        with open(journal, "r+b") as cut:
                            cut.truncate(offset + start)
                        return records
                    records += 1
                    if not records % PACE_EVERY:
                        pace()
                    start = end + 1
                offset += start
                content = content[start:]
                if at_end:
                    return records

    def apply(self, record: list[Any]) -> None:
        """A record in JSON: an acknowledgement, or a commit as journals held it before."""
        tag = record[0]
        if tag == "a":
            self.outbox.ack_upto(record[1])
            return
        if tag == "k":
            self.outbox.ack_exact(record[1])
            return
        if tag != "c":
            raise ValueError(f"unknown journal record {tag!r}")
        _, header, changed, removed, events = record
        self._commit(header[0], removed, changed, header, [(seq, (FROM_JOURNAL, e, 0)) for seq, e in events])

    def apply_commit_line(self, line: bytes) -> None:
        _, first, count, msisdn, removed, changed, header, events = line.split(b"\t")
        seq = int(first)
        self._commit(
            orjson.loads(msisdn),
            orjson.loads(removed),
            orjson.loads(changed),
            header,
            [(seq + i, (IN_COMMIT, events, i)) for i in range(int(count))],
        )

    def _commit(
        self,
        msisdn: str,
        removed: list[str],
        changed: list[Any],
        header: list[Any] | bytes,
        events: list[tuple[int, RawEvent]],
    ) -> None:
        sessions = self.sessions.get(msisdn)
        if sessions is None:
            sessions = self.sessions[msisdn] = {}
        for sid in removed:
            sessions.pop(sid, None)
        for session, kept in changed:
            # a journal writes only a session's new answers, and the request numbers it still keeps.
            # One it keeps may be missing where a record is replayed again over a later state (a
            # crash before the rotated journal was removed) that has since dropped it: the records
            # after bring the session back to that state, so it is left out, not called damage
            old = sessions.get(session[0])
            if old is not None:
                answers = {a[2]: a for a in _session_list(old)[5]}
                for answer in session[5]:
                    answers[answer[2]] = answer
                session[5] = [answers[n] for n in kept if n in answers]
            sessions[session[0]] = _kept(session)
        self.headers[msisdn] = header
        outbox = self.outbox
        for seq, event in events:
            # a crash between writing a snapshot and emptying the journal replays old records:
            # their events are in the snapshot's outbox already
            if seq > outbox.acked and seq > self._snapshot_seq:
                outbox.add(seq, event)
            if seq > outbox.seq:
                outbox.seq = seq

    def accounts(self) -> Iterator[tuple[list[Any], list[list[Any]]]]:
        """Each account's header and sessions."""
        for msisdn, header in self.headers.items():
            sessions = [_session_list(s) for s in self.sessions[msisdn].values()]
            yield orjson.loads(header) if isinstance(header, bytes) else header, sessions

    def write_snapshot(self, directory: Path) -> None:
        accounts = (_account_json(h, self.sessions[m].values()) for m, h in self.headers.items())
        outbox = self.outbox
        entries = [(seq, _snapshot_form(raw)) for seq, raw in outbox.entries()]
        write_snapshot(directory, outbox.seq, outbox.acked, accounts, entries, pace=self.pace)


def _kept(session: list[Any]) -> list[Any] | bytes:
    """A session as a replica keeps it: a finished one (never changed again, only forgotten) as
    its JSON, made once, not in every snapshot until it is forgotten (the finished sessions kept
    300 s for retransmissions are most of a snapshot), and one object, not dozens."""
    return session if session[6] is None else orjson.dumps(session)


def _session_list(session: list[Any] | bytes) -> list[Any]:
    return orjson.loads(session) if isinstance(session, bytes) else session


def _json(value: list[Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


def _account_json(header: list[Any] | bytes, sessions: Iterable[list[Any] | bytes]) -> bytes:
    """`{"header": ..., "sessions": [...]}` joined from the JSON the replica keeps. Most of a
    snapshot is finished sessions, each kept as its JSON: dumped through an `orjson.Fragment` each,
    the whole snapshot joined in memory before its write, a 165 MB snapshot took 0.42 s of CPU;
    joined as bytes and written an account at a time, 0.28 (docs/performance-log.md)."""
    return b'{"header":%b,"sessions":[%b]}' % (_json(header), b",".join([_json(s) for s in sessions]))


def _snapshot_form(raw: RawEvent) -> Any:
    return raw[1] if raw[0] == FROM_SNAPSHOT else event_to_dict(event_of(raw))


def write_snapshot(
    directory: Path,
    seq: int,
    acked: int,
    accounts: Iterable[bytes],
    outbox: list[tuple[int, Any]],
    replace: Callable[[Path, Path], None] = os.replace,
    pace: Callable[[], None] = no_pace,
) -> None:
    """The snapshot, written beside and then renamed over the last one; `accounts`: each account's
    JSON. One account at a time: a single `orjson.dumps` of it all, in a thread of the store, would
    hold the GIL throughout, and the whole joined first was the size of the snapshot in memory
    again (263 MB at five minutes of `make bench`'s e2e load), every page of it faulted in anew."""
    tmp = directory / (SNAPSHOT + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(b'{"seq":%d,"acked":%d,"accounts":[' % (seq, acked))
        separator = b""
        unsynced = 0
        for account in accounts:
            fh.write(separator)
            fh.write(account)
            separator = b","
            unsynced += len(account) + 1
            if unsynced >= SYNC_BYTES:
                fh.flush()
                getattr(os, "fdatasync", os.fsync)(fh.fileno())  # macOS has no fdatasync
                unsynced = 0
            pace()
        fh.write(b'],"outbox":')
        fh.write(orjson.dumps(outbox))
        fh.write(b"}")
        fh.flush()
        os.fsync(fh.fileno())
    replace(tmp, directory / SNAPSHOT)
