"""The notifier's "told once" fact, kept in the system of record so every replica shares it.

Claim before send: the replica whose claim wins sends, every other one skips. A claim that is never
finished (its sender crashed between the claim and `notices_done`) can be retaken once its lease has
passed: the notice may then be told a second time, never zero times (at-least-once in that window,
exactly once everywhere else). A lost balance warning is worse than a rare repeated one, and the
window is one batch of sends wide (the notifier's).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Protocol


class Claim(Enum):
    NEW = "new"  # nobody claimed it before: send
    RETAKEN = "retaken"  # claimed by a sender that never finished within the lease: send (maybe again)
    HELD = "held"  # another sender holds a live claim: it may still be sending, ask again later
    DONE = "done"  # told (or found nothing to tell) already: skip


class NoticeLedger(Protocol):
    def claim_notice(self, event_id: str, owner: str, now: int, lease: int) -> Claim:
        """Claim the notice `event_id` for `owner`; a claim older than `lease` seconds and not done
        is taken over."""

    def claim_notices(self, event_ids: Sequence[str], owner: str, now: int, lease: int) -> dict[str, Claim]:
        """`claim_notice` for each of `event_ids` (distinct), in one transaction where it can be."""

    def notices_done(self, event_ids: Sequence[str], now: int) -> None:
        """These notices went out (or there was nobody to tell): they are never claimed again. One
        transaction."""

    def release_notice(self, event_id: str, owner: str) -> None:
        """The send failed: drop `owner`'s unfinished claim so the next try may claim it at once."""

    def prune_notices(self, told_before: int) -> int:
        """Forget notices told before `told_before` (epoch seconds); how many. Unfinished claims stay."""
