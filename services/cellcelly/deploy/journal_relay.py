"""The embedded balance store's relay: a process of its own that tails the journal and publishes.

Why: in the process that charges, the outbox relay's looks were the gap between the embedded stack
and the two processes at low load. At 1,000 sessions/s, the embedded stack's e2e p99 was 2.27 ms
with them and 1.50 with the relay switched off; the loop ran late by 1.06 and 0.79 ms at p99. Their
CPU alone did not do it (a spin of the same length cost nothing): they read events gone cold since
their commit (docs/performance-log.md, 2026-12-07). Every event is in the journal already, so a
process of its own reads it there, as the checkpointer does, and publishes it. The charging
process only says where the journal's records end (a line a look) and acknowledges what was
published (one short record, `EmbeddedBalanceStore.ack_upto`).

At least once, as the outbox relay: the child says it published up to a seq only once the bus holds
those events durably (`flush`), and the parent acknowledges up to there. Any failure (the bus, the
child dying, the journal rotated twice between two looks: `JournalMoved`) ends the child, and the
parent starts again, backing off. Each start takes a mark of the journal: the parent publishes what
is unacknowledged up to it from the outbox itself (the outbox recovered at start, or what a failed
child left), and only then tells the new child to read from the mark on. So each subscriber's events
reach the bus in commit order; what a failed child had sent may come twice, which consumers ignore
(they are idempotent on the event id).

The parent sends `<generation> <inode> <size> <seq>` (a `JournalMark`: the journal's records end
there) at most every `every` seconds, on a socket, with the next journal's descriptor when it
rotated; the child answers `<seq>` on its standard output (every event up to it is on the bus). The
socket's end (the parent stopping, or dead) makes it publish what it was told, answer and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Mapping

from cellcelly import runtime
from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.balance_files import JournalMark, JournalTail
from cellcelly.application.relay import RelayStats, add_records, journal_records
from cellcelly.application.worker import run_until_stopped, wait_or_stop
from cellcelly.ports.event_bus import EventBus, Outgoing
from cellcelly.settings import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 20.0  # for the child to publish what it was told, and exit, when the stack stops
DRAIN_BATCH = 500  # outbox events a publish, in the parent's part


def bus_env(settings: Settings) -> dict[str, str]:
    """What the child must see as the parent does to open the same bus (it inherits the rest)."""
    return {"CELLCELLY_DATA_DIR": str(settings.data_dir.resolve()), "CELLCELLY_EVENT_BUS": settings.event_bus}


class JournalRelay:
    """The parent's side: starts the child, tells it where the journal ends, acknowledges."""

    def __init__(
        self,
        store: EmbeddedBalanceStore,
        bus: EventBus,
        env: Mapping[str, str],
        *,
        every: float = 0.05,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        if store.directory is None:
            raise ValueError("a journal relay needs a balance store with files")
        self.store, self.bus = store, bus
        self.directory = store.directory
        self.every = every
        self.backoff = backoff
        self.stats = RelayStats()
        self.pid: int | None = None  # the child's, while it runs
        self._env = env
        self._stop = asyncio.Event()

    async def run(self) -> None:
        def failed() -> None:
            self.stats.failures += 1

        await run_until_stopped(
            self._child_life, self._stop, name="journal relay", backoff=self.backoff, on_failure=failed
        )

    def stop(self) -> None:
        self._stop.set()

    async def _child_life(self) -> float:
        """One child, from its mark until the relay stops (raises when it fails)."""
        mark, journal = self.store.journal_at_mark()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            child = await self._start(mark, theirs.fileno(), journal)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child's copies are open
            os.close(journal)
        ours.setblocking(False)
        try:
            await self._publish_upto(mark.seq)
            await self._follow(child, ours, mark)
        finally:
            ours.close()
            await _end(child)
            self.pid = None
        return 0.0

    async def _start(self, mark: JournalMark, marks: int, journal: int) -> asyncio.subprocess.Process:
        # the modules this process imported, wherever they came from (a compiled build first)
        path = os.pathsep.join(p for p in sys.path if p)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            str(marks),
            str(journal),
            *(str(n) for n in mark),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self._env, "PYTHONPATH": path},
            pass_fds=(marks, journal),
        )
        self.pid = child.pid
        log.info("journal relay started", extra={"pid": child.pid, "from_seq": mark.seq})
        return child

    async def _publish_upto(self, upto: int) -> None:
        """The outbox's events up to seq `upto`, published and acknowledged from here."""
        store, after = self.store, 0
        while entries := [e for e in store.outbox(limit=DRAIN_BATCH, after=after) if e.seq <= upto]:
            batch: list[Outgoing] = []
            for e in entries:
                add_records(batch, e.event)
            await self.bus.send(batch)
            await self.bus.flush()
            seqs = [e.seq for e in entries]
            store.ack(seqs)
            after = seqs[-1]
            self.stats.relayed += len(seqs)
            self.stats.batches += 1

    async def _follow(
        self, child: asyncio.subprocess.Process, marks: socket.socket, told: JournalMark
    ) -> None:
        assert child.stdout is not None
        acks = asyncio.ensure_future(self._acknowledge(child.stdout))
        try:
            while True:
                stopping = self._stop.is_set()
                told = self._tell(marks, told)
                if stopping:
                    marks.shutdown(socket.SHUT_WR)  # its end of input: publish what it was told, exit
                    await asyncio.wait_for(acks, STOP_SECONDS)
                    return
                await wait_or_stop(self._stop, self.every)
                if acks.done():
                    acks.result()
                    raise OSError(f"the journal relay process (pid {child.pid}) ended: {await child.wait()}")
        finally:
            acks.cancel()

    def _tell(self, marks: socket.socket, told: JournalMark) -> JournalMark:
        """Where the journal's records end now, with the next journal's descriptor when it rotated;
        what the child was told last."""
        store = self.store
        mark, journal = store.journal_mark(), -1
        if mark == told:
            return told
        if mark.generation != told.generation:
            mark, journal = store.journal_at_mark()
        try:
            socket.send_fds(marks, [b"%d %d %d %d" % mark], [journal] if journal >= 0 else [])
        except BlockingIOError:  # its input is full: it is behind, and told again at the next look
            return told
        finally:
            if journal >= 0:
                os.close(journal)
        return mark

    async def _acknowledge(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            self.stats.relayed += self.store.ack_upto(int(line))
            self.stats.batches += 1


async def _end(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.wait_for(child.wait(), STOP_SECONDS)
        except TimeoutError:
            child.kill()
            await child.wait()


# --- the child's side ---------------------------------------------------------------------------


async def relay(marks: socket.socket, tail: JournalTail, bus: EventBus) -> None:
    """Publish the journal's events up to each mark received; answer each with the last seq
    published (on standard output)."""
    answered = tail.seq
    marks.setblocking(False)
    while True:
        try:
            line, fds, _, _ = socket.recv_fds(marks, 256, 1)
        except BlockingIOError:
            await _readable(marks)
            continue
        if not line:
            return
        events = tail.read(JournalMark(*map(int, line.split())), fds[0] if fds else -1)
        if events:
            await bus.send(journal_records(events))
            await bus.flush()
        if tail.seq != answered:
            sys.stdout.buffer.write(b"%d\n" % tail.seq)
            sys.stdout.buffer.flush()
            answered = tail.seq


async def _readable(sock: socket.socket) -> None:
    """Until `sock` has something to read. Watched only meanwhile: a reader left on it would wake the
    loop at every turn while a mark waits unread (the bus's flush)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock, wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock)


def main(argv: list[str]) -> int:
    from cellcelly.deploy.backends import build_bus
    from cellcelly.logs import setup_logging

    # the cores are charging's first: publishing can wait, a CCR cannot. At niceness 0 it woke every
    # look and took a core from the charging processes for its 1-2 ms: the embedded stack's e2e p99
    # at 1,000 sessions/s was worse with it than with the relay in the parent (median 3.7 against
    # 2.3 ms); idle, the parent's loop ran late 1.06 ms at p99 against 1.59 (docs/performance-log.md)
    runtime.background_priority()
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    marks = socket.socket(fileno=int(argv[0]))
    tail = JournalTail(JournalMark(*map(int, argv[2:6])), int(argv[1]))

    async def serve() -> None:
        bus = build_bus(settings)
        try:
            await relay(marks, tail, bus)
        finally:
            await bus.close()

    try:
        asyncio.run(serve())
    finally:
        tail.close()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by `JournalRelay`
    sys.exit(main(sys.argv[1:]))
