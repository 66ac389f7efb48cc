"""The small error hierarchy shared by every layer (adapters and services subclass these)."""

from __future__ import annotations


class CellCellyError(Exception):
    """Base of every error CellCelly raises on purpose."""


class DomainError(CellCellyError, ValueError):
    """Input that breaks a domain rule (bad amount, bad unit, inconsistent catalogue)."""


class CatalogueError(DomainError):
    """A tariff/package catalogue that cannot be used; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid catalogue: " + "; ".join(problems))


class StoreError(CellCellyError):
    """A back end failed (I/O, conflict that could not be retried)."""


class ConflictError(StoreError):
    """An optimistic write lost a race; the caller may retry."""
