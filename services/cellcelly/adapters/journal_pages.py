"""The journal's pages made ahead of its records, by a thread of their own.

An append to a file lands, every few records, on a page the kernel has yet to allocate and zero.
On this project's machines (VMs whose host takes back memory the guest has freed) that first touch
of a fresh page cost ~13 µs of the writing thread's time at times: a 291-byte record's append 2.7
µs against 1.1 at others. In the charging process it was 4 of its 60 µs a CCR, on the thread
every commit waits for (docs/architecture.md, "2026-12-06, the night session").

So the journal's blocks are allocated (fallocate(2)) 3-4 MiB past its last record, and a
thread below charging's priority has the kernel read those pages in (`POSIX_FADV_WILLNEED`: made
in the page cache, zeroed, as the blocks are unwritten); the commits then write into pages that
exist. Readahead is off on the file (`POSIX_FADV_RANDOM`): it makes large folios, into which
each small write walks every block. `python -m cellcelly_dev.journal_pages_bench` measures the
writing thread's CPU a record either way.

The thread only allocates and reads, never writes: a commit's record and the thread can never
overwrite each other, whatever their order. The price is that the file is longer than its records
while open: the zeros past the last record are cut at close, before a journal is rotated, and by
recovery after a crash (`trim_zero_tail`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

from cellcelly import runtime

log = logging.getLogger(__name__)

AHEAD_BYTES = 4 << 20  # pages kept made past the last record
REFILL_BYTES = 1 << 20  # the thread is woken when fewer than AHEAD - REFILL remain
TRIM_READ = 1 << 20


def supported() -> bool:
    """Linux, where fallocate(2) and posix_fadvise are."""
    return sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")


def allocate(fd: int, offset: int, length: int) -> None:
    """fallocate(2) itself, not `os.posix_fallocate`: where a file system has no fallocate, glibc's
    posix_fallocate writes a zero byte into each block it finds zero, and a commit's record may be
    written there between its read and its write. The system call only allocates, or fails."""
    libc = runtime.libc()
    libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if libc.fallocate(fd, 0, offset, length) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class PagesAhead:
    """Keeps a journal's pages made `ahead` bytes past `end` (the byte after its last record).

    The thread reads through a descriptor of its own, so the journal's may be closed at any time;
    it allocates (which lengthens the file) only under its lock, so that once `stop` returns it
    never will again: a journal cut to its records stays so."""

    def __init__(self, fd: int, end: int, ahead: int = AHEAD_BYTES, refill: int = REFILL_BYTES) -> None:
        self._fd = os.dup(fd)
        self._ahead, self._refill = ahead, refill
        self._lock = threading.Lock()
        self._made = end  # pages are made up to here
        self._wanted = end + ahead
        self.next_call = self._wanted - refill  # the end at which the writer calls `reached`
        self._wake = threading.Event()
        self._stopped = False
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        self._thread = threading.Thread(target=self._run, daemon=True, name="journal-pages")
        self._thread.start()
        self._wake.set()

    def reached(self, end: int) -> int:
        """The journal's records now end at `end`: more pages are made. The end at which to call
        again, which the writer compares with its own (a call a record was ~0.1 µs of a record's
        1.2; the comparison in the compiled store costs nothing)."""
        self._wanted = end + self._ahead
        self._wake.set()
        return self._wanted - self._refill

    def restart(self, end: int) -> None:
        """The file was cut back to `end` (a refused record): make its pages from there again."""
        with self._lock:
            self._made = min(self._made, end)
            self._wanted = end + self._ahead
        self._wake.set()

    def stop(self, wait: bool = False) -> None:
        """No allocation after this returns; the thread ends soon after (`wait`: before)."""
        with self._lock:
            self._stopped = True
        self._wake.set()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        runtime.background_priority()  # this thread only: charging's keeps its priority
        try:
            while not self._stopped:
                self._wake.wait()
                self._wake.clear()
                self._make()
        except OSError as exc:
            # a full disk, a file system without fallocate: the commits make their pages
            # themselves, as before, and meet the disk's error on their own write
            log.warning("journal pages not made ahead", extra={"error": str(exc)})
        finally:
            os.close(self._fd)

    def _make(self) -> None:
        while True:
            with self._lock:
                wanted = self._wanted
                # behind the records (this thread waits for idle CPU): they made their own pages
                start = self._made = max(self._made, wanted - self._ahead)
                if self._stopped or start >= wanted:
                    return
                end = min(wanted, start + self._refill)
                # the blocks allocated, and the file lengthened: the pages read below exist
                allocate(self._fd, start, end - start)
                self._made = end
            # read in by the kernel, zeroed (the blocks are unwritten): one call, no copy, and the
            # GIL let go once, not a page at a time (charging's thread waited on it)
            os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_WILLNEED)


def trim_zero_tail(path: str | os.PathLike[str], block: int = TRIM_READ) -> int:
    """Cut the zeros after a journal's last record (pages made ahead that no record reached),
    read back from the end `block` bytes at a time; its size after. A record never holds a zero
    byte (JSON as orjson writes it, tabs, digits)."""
    with open(path, "r+b") as fh:
        size = end = fh.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            stripped = fh.read(end - start).rstrip(b"\0")
            if stripped:
                end = start + len(stripped)
                break
            end = start
        if end < size:
            fh.truncate(end)
        return end
