"""The catalogue in force: loaded from the human-editable file, replaceable at run time.

A replacement is parsed and validated completely before it is swapped in; if anything is
wrong the old catalogue stays in force and the caller gets every problem found.
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
        self.on_change: Callable[[Catalogue], None] | None = None  # e.g. record it in the system of record

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
            self._current = new
            if self.on_change is not None:
                self.on_change(new)
        log.info("catalogue in force", extra={"version": new.version, "tariffs": len(new.tariffs)})
        return new

    def reload(self) -> Catalogue:
        """Re-read the file the catalogue came from."""
        if self._path is None:
            raise CatalogueError(["this catalogue was not loaded from a file"])
        try:
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError([f"cannot read {self._path}: {exc}"]) from exc
        return self.replace(text, persist=False)
