"""The catalogue in force: loaded from the human-editable file, replaceable at run time.

A replacement is parsed and validated completely before it is swapped in; if anything is
wrong the old catalogue stays in force and the caller gets every problem found.

With a system of record (wiring.py), the record says which version is in force: `on_change`
writes it there before this process swaps, and a `CatalogueFollower` makes every other process
`adopt` it within one poll.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from cellcelly.domain.catalogue import Catalogue, parse_catalogue
from cellcelly.domain.errors import CatalogueError
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)


def parse_catalogue_text(text: str) -> Catalogue:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError([f"not valid YAML/JSON: {exc}"]) from exc
    return parse_catalogue(data, source=text)


class CatalogueHolder:
    def __init__(self, catalogue: Catalogue, path: Path | None = None) -> None:
        self._current = catalogue
        self._path = path
        self._lock = threading.Lock()
        # called before the swap, so a failure (say, the record refusing it) leaves the old in force
        self.on_change: Callable[[Catalogue], None] | None = None

    @classmethod
    def from_file(cls, path: Path) -> CatalogueHolder:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError([f"cannot read {path}: {exc}"]) from exc
        return cls(parse_catalogue_text(text), path)

    @property
    def current(self) -> Catalogue:
        return self._current

    def replace(self, text: str, persist: bool = True) -> Catalogue:
        """Validate `text` and put it in force; raises CatalogueError and keeps the old one.

        With `persist`, the file is rewritten too (atomically), so the file stays the one
        source of truth that a restart or a later reload reads.
        """
        new = parse_catalogue_text(text)
        with self._lock:
            if new.version == self._current.version and new.source != self._current.source:
                raise CatalogueError(
                    [f"version {new.version!r} is in force with other content: bump the version"]
                )
            if persist and self._path is not None and new.source != self._current.source:
                tmp = self._path.with_suffix(".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self._path)
            if self.on_change is not None:
                self.on_change(new)
            self._current = new
        log.info("catalogue in force", extra={"version": new.version, "tariffs": len(new.tariffs)})
        return new

    def adopt(self, new: Catalogue) -> None:
        """Take a catalogue another process put in force: already validated and recorded, so
        neither `on_change` (it would activate it again) nor the file."""
        with self._lock:
            self._current = new
        log.info("catalogue in force", extra={"version": new.version, "tariffs": len(new.tariffs)})

    def reload(self) -> Catalogue:
        """Re-read the file the catalogue came from."""
        if self._path is None:
            raise CatalogueError(["this catalogue was not loaded from a file"])
        try:
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError([f"cannot read {self._path}: {exc}"]) from exc
        return self.replace(text, persist=False)


class CatalogueFollower:
    """Keeps a holder on the version the system of record has in force: a poll of one one-row
    query every `interval` seconds, on its own thread so the event loop never waits on it."""

    def __init__(self, holder: CatalogueHolder, records: SystemOfRecord, interval: float = 2.0) -> None:
        self._holder = holder
        self._records = records
        self._interval = interval
        self._generation = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalogue-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception as exc:  # a record briefly away must not end the follower: next poll retries
                # the traceback once a streak: a record away for minutes would fill the log with copies
                log.warning("catalogue poll failed", extra={"error": repr(exc)}, exc_info=not failing)
                failing = True
            else:
                if failing:
                    log.info("catalogue poll works again")
                failing = False

    def poll(self) -> bool:
        """Adopt the version in force if it is not this holder's; whether it changed anything."""
        in_force = self._records.catalogue_in_force()
        if in_force is None or in_force.generation == self._generation:
            return False
        changed = False
        if in_force.version != self._holder.current.version:
            record = self._records.catalogue_version(in_force.version)
            if record is None:  # cannot happen: both rows are written in one transaction
                return False
            try:
                self._holder.adopt(parse_catalogue_text(record.source))
            except CatalogueError as exc:  # a newer release may reject an old text: keep charging
                log.error("catalogue in force does not parse here", extra={"problems": exc.problems})
                return False
            changed = True
        self._generation = in_force.generation
        return changed


def package_namer(catalogue: CatalogueHolder) -> Callable[[str], str]:
    """A package's name as subscribers know it ("Diyarbakır"), from its code, in the catalogue in force."""

    def package_name(code: str) -> str:
        package = catalogue.current.packages.get(code)
        return package.name if package else code

    return package_name
