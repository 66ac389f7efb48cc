"""The embedded balance store's checkpointer: a process of its own that writes the snapshots.

A snapshot is the state recovery would build from the files it replaces: the last snapshot and
the rotated journal (and, after a snapshot that failed, the part of the live journal written by
then). So it is built from those files, by a process that replays them into a replica it keeps
between snapshots, and not from the charging process's memory. That memory was copied by a fork
before: the fork held the GIL 5-20 ms at 300-1,700 MB, and every page charging wrote in the
second after it was copied, 22,000-51,000 page faults at 80-110% of a core each time, the p99 of
a five-minute run (docs/performance-log.md, "2026-12-06"). Replaying costs CPU instead, at the
lowest priority (`runtime.background_priority`); on a VM whose host shares its cores that CPU is
still charging's, so the replay reads only what it needs (`balance_files`), and it works a little
at a time, at most the share of a core it is given (`runtime.CpuShare`).

It is started by the store on its first background snapshot and talks over its standard input and
output: the store writes `compact <n>` (the bytes of the live journal the snapshot is also to
cover, -1 for none) and reads `ok` or `error <why>`. The store's close ends it (a snapshot under
way or not); so does the end of its standard input (the store's process died).

The replica is kept only while the snapshot on disk is the one it wrote: another writer (the
store's own `compact()`), a failure or a snapshot that covers part of the live journal (replayed
again later) make it start again from the snapshot on disk.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cellcelly import runtime
from cellcelly.adapters.balance_files import JOURNAL, ROTATED, SNAPSHOT, Replica, no_pace

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0  # for a killed checkpointer to be gone


class Checkpointer:
    """The store's side: starts the process when first asked, and asks it for each snapshot."""

    def __init__(self, directory: Path, cpu_share: float = 1.0) -> None:
        self._dir = directory
        self._cpu_share = cpu_share  # of a core, at most, at any moment (`runtime.CpuShare`)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # the compactor thread starts it, the store's close ends it
        self._closed = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def compact(self, journal_bytes: int) -> None:
        """A snapshot of the snapshot on disk, the rotated journal and the live journal's first
        `journal_bytes` (-1: none), written; OSError if it was not."""
        with self._lock:
            if self._closed:
                raise OSError("the balance checkpointer is closed")
            process = self._process
            if process is None or process.poll() is not None:
                if process is not None:  # it died (killed, out of memory): its pipes go with it
                    _stop(process)
                process = self._process = self._start()
        stdin, stdout = _pipes(process)
        try:
            stdin.write(b"compact %d\n" % journal_bytes)
            stdin.flush()
        except OSError as exc:
            raise OSError(f"the balance checkpointer (pid {process.pid}) is gone: {exc}") from exc
        reply = stdout.readline()
        if reply != b"ok\n":
            said = reply.decode(errors="replace").strip() or f"exited with {process.wait()}"
            raise OSError(f"the balance checkpointer (pid {process.pid}) wrote no snapshot: {said}")

    def _start(self) -> subprocess.Popen[bytes]:
        # the modules this process imported, wherever they came from (a compiled build first)
        path = os.pathsep.join(p for p in sys.path if p)
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self._dir), str(self._cpu_share)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        log.info("balance checkpointer started", extra={"pid": process.pid})
        return process

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
        if process is not None:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ends it now, a snapshot under way or not (the files it was to replace stay)."""
    stdin, stdout = _pipes(process)
    try:
        stdin.close()
    except OSError:  # what was buffered could not reach a process already gone
        pass
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    stdout.close()


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert process.stdin is not None and process.stdout is not None
    return process.stdin, process.stdout


class Checkpoints:
    """The process's side: a replica of the files, and the snapshots written from it."""

    def __init__(self, directory: Path, pace: Callable[[], None] = no_pace) -> None:
        self._dir = directory
        self._pace = pace
        self._replica: Replica | None = None
        self._written: tuple[int, int, int] | None = None  # the snapshot the replica is

    def compact(self, journal_bytes: int) -> None:
        replica = self._replica
        if replica is None or self._snapshot_identity() != self._written:
            replica = Replica(self._pace)
            replica.load_snapshot(self._dir / SNAPSHOT)
        self._replica, self._written = None, None  # until this snapshot is written
        replica.replay_journal(self._dir / ROTATED)
        if journal_bytes >= 0:
            replica.replay_journal(self._dir / JOURNAL, upto=journal_bytes)
        replica.write_snapshot(self._dir)
        if journal_bytes < 0:  # else those records come again with the rotated journal
            self._replica, self._written = replica, self._snapshot_identity()

    def _snapshot_identity(self) -> tuple[int, int, int] | None:
        try:
            found = (self._dir / SNAPSHOT).stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns


def main(argv: list[str]) -> int:
    runtime.background_priority()  # the cores are charging's first
    # a replica's lists make no reference cycles, and are many: the collector's walks of them were
    # two thirds of a replay's CPU (1.6 s against 0.5 to read a 74 MB snapshot)
    gc.disable()
    share = float(argv[1]) if len(argv) > 1 else 1.0
    checkpoints = Checkpoints(Path(argv[0]), runtime.CpuShare(share))
    for line in sys.stdin.buffer:
        try:
            verb, journal_bytes = line.split()
            if verb != b"compact":
                raise ValueError(f"unknown request {verb!r}")
            checkpoints.compact(int(journal_bytes))
        except Exception as exc:  # said to the store, which logs it and keeps its journals
            said = repr(exc).replace("\n", " ")
            reply = f"error {said}\n".encode(errors="replace")
        else:
            reply = b"ok\n"
        try:
            sys.stdout.buffer.write(reply)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the store's process is gone: nobody to write for
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit's flush
            return 0
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by `Checkpointer`
    sys.exit(main(sys.argv[1:]))
