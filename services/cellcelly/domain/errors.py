"""The domain's errors: rule violations (`DomainError`). The whole tree, with the answer each
boundary gives for each branch, is drawn in `cellcelly.errors`."""

from __future__ import annotations

from cellcelly.errors import CellCellyError, DomainError

__all__ = ["CatalogueError", "CellCellyError", "DomainError"]


class CatalogueError(DomainError):
    """A tariff/package catalogue that cannot be used; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid catalogue: " + "; ".join(problems))
