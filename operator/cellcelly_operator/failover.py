"""Oracle failover decisions: to the standby after the primary is unreachable long enough; back when told.

The operator writes spec.oracle.failover.active=standby together with status.oracle.active when it
fails over; a user setting spec back to primary ("when told") is then the only way back.
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
    switched: bool  # the operator moved to the standby now
    told_back: bool  # a user set spec back to primary


def decide(
    *,
    spec_active: Side,
    status_active: Side,
    primary_up: bool | None,
    down_since: float | None,
    now: float,
    fail_after: int,
    iso: Callable[[float], str],
) -> Decision:
    """`primary_up` None: not checked this time (on the standby, nobody probes the primary for us)."""
    if status_active == "standby" and spec_active == "primary":
        return Decision("primary", None, switched=False, told_back=True)
    if spec_active == "standby":
        return Decision("standby", None, switched=status_active != "standby", told_back=False)
    if primary_up is None or primary_up:
        return Decision("primary", None, switched=False, told_back=False)
    since = down_since if down_since is not None else now
    if now - since >= fail_after:
        return Decision("standby", None, switched=True, told_back=False)
    return Decision("primary", iso(since), switched=False, told_back=False)


def status_of(decision: Decision, now_iso: str) -> dict[str, Any]:
    """status.oracle (merged: lastSwitchTime stays until the next switch)."""
    out: dict[str, Any] = {"active": decision.active, "primaryDownSince": decision.primary_down_since}
    if decision.switched or decision.told_back:
        out["lastSwitchTime"] = now_iso
    return out
