"""The catalogue in force: loaded from the human-editable file, replaceable at run time.

A replacement is parsed and validated completely before it is swapped in; if anything is
wrong the old catalogue stays in force and the caller gets every problem found.
"""

from __future__ import annotations

import logging
import threading
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

    def replace(self, text: str) -> Catalogue:
        """Validate `text` and put it in force; raises CatalogueError and keeps the old one."""
        new = parse_catalogue_text(text)
        with self._lock:
            if new.version == self._current.version and new.source != self._current.source:
                raise CatalogueError(
                    [f"version {new.version!r} is in force with other content: bump the version"]
                )
            self._current = new
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
        return self.replace(text)
