"""Oracle failover decisions: to the standby after the primary is unreachable long enough; back when asked.

The side in force lives in status.oracle.active, written by the operator only; spec is the user's and the
operator never writes it. (It once wrote spec.oracle.failover.active=standby: a GitOps tool re-applying the
user's manifest set it back to primary, which read as "switch back to the dead primary".) As CloudNativePG
keeps currentPrimary/targetPrimary in status, the user asks for the way back through a field the operator
only reads: a new value of spec.oracle.failover.switchBackRequested (a timestamp or a counter), compared
with status.oracle.switchBackHandled. A spec field rather than an annotation: the CRD validates and
documents it, it sits in Git with the rest of the stack, and a re-apply of the same value is no new request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Side = Literal["primary", "standby"]
Probe = Callable[[str, int, float], Awaitable[bool]]


async def tcp_probe(host: str, port: int, timeout: float) -> bool:
    """The primary answers when its listener accepts a TCP connection."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


@dataclass(frozen=True)
class Decision:
    active: Side
    primary_down_since: str | None
    handled: str | None  # the switch-back request dealt with (status.oracle.switchBackHandled)
    switched: bool = False  # the operator moved to the standby now
    switched_back: bool = False  # back on the primary now, as asked
    refused: bool = False  # a switch-back asked while the primary does not answer: stays on the standby


def wants_switch_back(active: Side, requested: str | None, handled: str | None) -> bool:
    """A new request while on the standby: only then is the primary probed from there."""
    return active == "standby" and bool(requested) and requested != handled


def decide(
    *,
    active: Side,
    requested: str | None,
    handled: str | None,
    primary_up: bool | None,
    down_since: float | None,
    now: float,
    fail_after: int,
    iso: Callable[[float], str],
) -> Decision:
    """`active` and `handled` from status, `requested` from spec. `primary_up` None: not probed (on the
    standby with no new request, nobody probes the primary for us).

    A request seen on the primary is handled at once as nothing to do: a value already in Git when a
    later failover happens must not undo it. A request while the primary does not answer is handled as
    refused (the user asks again with a new value once the database is back), not kept pending: a
    switch-back at some later moment nobody chose is what this field is there to prevent.
    """
    if active == "standby":
        if not wants_switch_back(active, requested, handled):
            return Decision("standby", None, handled)
        if primary_up:
            return Decision("primary", None, requested, switched_back=True)
        return Decision("standby", None, requested, refused=True)
    if primary_up is None or primary_up:
        return Decision("primary", None, requested or handled)
    since = down_since if down_since is not None else now
    if now - since >= fail_after:
        return Decision("standby", None, requested or handled, switched=True)
    return Decision("primary", iso(since), requested or handled)


def status_of(decision: Decision, now_iso: str) -> dict[str, Any]:
    """status.oracle (merged: lastSwitchTime stays until the next switch)."""
    out: dict[str, Any] = {"active": decision.active, "primaryDownSince": decision.primary_down_since}
    if decision.handled is not None:
        out["switchBackHandled"] = decision.handled
    if decision.switched or decision.switched_back:
        out["lastSwitchTime"] = now_iso
    return out
