"""The writing thread's CPU a journal record: appended into fresh pages, against written into pages
made ahead by `journal_pages.PagesAhead` (what the embedded store does).

    PYTHONPATH=services:tools .venv/bin/python -m cellcelly_dev.journal_pages_bench [--records N]

Each way writes N records of 291 bytes to a new file in the directory given (by default `./data`,
on the disk the store uses: /tmp may be another file system) and prints the writing thread's CPU
a record (`time.thread_time`: the pages thread's own CPU is not the writer's). Alternated, so a
phase of the machine falls on both. The first touch of a fresh page is what differs: ~0.1 µs of
a record where freed pages are reused, ~1.5 µs where the host must give the page back
(docs/architecture.md, "2026-12-06, the night session").
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from cellcelly.adapters.journal_pages import PagesAhead

log = logging.getLogger(__name__)
RECORD = b"x" * 290 + b"\n"


def append(path: Path, records: int) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        started, end = time.thread_time(), 0
        for _ in range(records):
            os.write(fd, RECORD)
            end += len(RECORD)  # as the store keeps its journal's size
        return (time.thread_time() - started) / records
    finally:
        os.close(fd)


def ahead(path: Path, records: int) -> float:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    pages = PagesAhead(fd, 0)
    try:
        time.sleep(0.2)  # the first pages, as at a store's start
        started, end, tell_at = time.thread_time(), 0, pages.next_call
        for _ in range(records):
            os.pwrite(fd, RECORD, end)
            end += len(RECORD)
            if end > tell_at:  # as the store does
                tell_at = pages.reached(end)
        return (time.thread_time() - started) / records
    finally:
        pages.stop(wait=True)
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_dev.journal_pages_bench")
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "journal-pages-bench"
    for _ in range(args.rounds):
        for name, way in (("append", append), ("pages made ahead", ahead)):
            path.unlink(missing_ok=True)
            try:
                spent = way(path, args.records)
            finally:
                path.unlink(missing_ok=True)
            log.info("%-18s %5.2f µs of the writing thread a record", name, spent * 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
