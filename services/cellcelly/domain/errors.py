"""The domain's errors: rule violations (`DomainError`). The whole tree, with the answer each
boundary gives for each branch, is drawn in `cellcelly.errors`."""

from __future__ import annotations

# Back-end failures are no domain matter: they live in cellcelly.errors. These names stay importable
# from here only for the modules other work has open (balance_embedded, balance_voltdb, the store
# contract); new code imports them from cellcelly.errors.
from cellcelly.errors import CellCellyError, ConflictError, DomainError, StoreError

__all__ = ["CatalogueError", "CellCellyError", "ConflictError", "DomainError", "StoreError"]


class CatalogueError(DomainError):
    """A tariff/package catalogue that cannot be used; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid catalogue: " + "; ".join(problems))
