"""The embedded balance store's files: the journal, the snapshot, and the state they hold.

The journal is one JSON list a line: `["c", header, changed sessions, removed session ids,
events]` for a commit, `["a", seq]` for the outbox acknowledged up to `seq`, `["k", seqs]` for
those alone. The snapshot is one JSON object: `seq`, `acked`, every account (its header and its
sessions, in the journal's lists) and the unacknowledged outbox (each event in its versioned
dict, `codec.event_to_dict`).

`Replica` applies them as lists, without making a domain object: recovery builds each account
once, from its last lists, and the checkpointer (`balance_checkpointer`) keeps a replica and
writes the snapshots from it. Made into domain objects record by record, a replay took about as
much CPU as the charging that wrote the records (25 s of a core for 256 MB of journal).
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


# an outbox event of a replica as read: from a journal (its `journal_event` form), or a snapshot
# (`event_to_dict`'s); made into the other form only when it is still there to be written
FROM_JOURNAL, FROM_SNAPSHOT = 0, 1
RawEvent = tuple[int, Any]


def event_of(raw: RawEvent) -> Event:
    form, value = raw
    return event_from_journal(value) if form == FROM_JOURNAL else event_from_dict(value)


class Replica:
    """The state of a snapshot and the journals after it, as the files hold it: lists."""

    def __init__(self) -> None:
        self.headers: dict[str, list[Any]] = {}  # by msisdn: `codec.header_to_list`'s
        self.sessions: dict[str, dict[str, list[Any]]] = {}  # by msisdn, by id: `session_to_list`'s
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
            self.sessions[header[0]] = {s[0]: s for s in account["sessions"]}
        for seq, event in data["outbox"]:
            outbox.add(seq, (FROM_SNAPSHOT, event))
        return True

    def replay_journal(self, journal: Path, *, upto: int | None = None, cut_torn: bool = False) -> int:
        """The records of `journal` (its first `upto` bytes) applied; how many.

        A record torn by a crash, the last, is cut out of the file when `cut_torn` (recovery);
        anything else that does not read is a StoreError: the file is left for a human to see."""
        with open(journal, "rb") as fh:
            content = fh.read() if upto is None else fh.read(upto)
        offset = 0
        records = 0
        while offset < len(content):
            end = content.find(b"\n", offset)
            last = end < 0 or end == len(content) - 1
            try:
                if end < 0:
                    raise ValueError("record without its end")
                self.apply(orjson.loads(content[offset:end]))
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                if not (last and cut_torn):
                    where = f"{journal.name} at byte {offset}"
                    raise StoreError(f"balance journal damaged: {where}: {exc}") from exc
                log.warning("cutting a torn last journal record", extra={"offset": offset})
                with open(journal, "r+b") as fh:
                    fh.truncate(offset)
                break
            records += 1
            offset = end + 1
        return records

    def apply(self, record: list[Any]) -> None:
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
        msisdn = header[0]
        sessions = self.sessions.get(msisdn)
        if sessions is None:
            sessions = self.sessions[msisdn] = {}
        for sid in removed:
            sessions.pop(sid, None)
        for session, kept in changed:
            # a journal writes only a session's new answers, and the request numbers it still keeps
            old = sessions.get(session[0])
            if old is not None:
                answers = {a[2]: a for a in old[5]}
                for answer in session[5]:
                    answers[answer[2]] = answer
                session[5] = [answers[n] for n in kept]
            sessions[session[0]] = session
        self.headers[msisdn] = header
        outbox = self.outbox
        for seq, event in events:
            # a crash between writing a snapshot and emptying the journal replays old records:
            # their events are in the snapshot's outbox already
            if seq > outbox.acked and seq > self._snapshot_seq:
                outbox.add(seq, (FROM_JOURNAL, event))
            if seq > outbox.seq:
                outbox.seq = seq

    def accounts(self) -> Iterator[tuple[list[Any], dict[str, list[Any]]]]:
        """Each account's header and sessions."""
        for msisdn, header in self.headers.items():
            yield header, self.sessions[msisdn]

    def write_snapshot(self, directory: Path, replace: Callable[[Path, Path], None] = os.replace) -> None:
        write_snapshot(
            directory,
            self.outbox.seq,
            self.outbox.acked,
            ({"header": h, "sessions": list(s.values())} for h, s in self.accounts()),
            [(seq, _snapshot_form(raw)) for seq, raw in self.outbox.entries()],
            replace,
        )


def _snapshot_form(raw: RawEvent) -> Any:
    return raw[1] if raw[0] == FROM_SNAPSHOT else event_to_dict(event_from_journal(raw[1]))


def write_snapshot(
    directory: Path,
    seq: int,
    acked: int,
    accounts: Iterable[dict[str, Any]],
    outbox: list[tuple[int, Any]],
    replace: Callable[[Path, Path], None] = os.replace,
) -> None:
    """The snapshot, written beside and then renamed over the last one; one account at a time (a
    single `orjson.dumps` of it all, in a thread of the store, would hold the GIL throughout)."""
    tmp = directory / (SNAPSHOT + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(b'{"seq":%d,"acked":%d,"accounts":[' % (seq, acked))
        fh.write(b",".join(orjson.dumps(a) for a in accounts))
        fh.write(b'],"outbox":')
        fh.write(orjson.dumps(outbox))
        fh.write(b"}")
        fh.flush()
        os.fsync(fh.fileno())
    replace(tmp, directory / SNAPSHOT)
