"""One send per loop turn: what a connection writes in one turn of the event loop leaves in one send.

Under load several answers (or requests) finish in the same turn, and a send each cost the gateway
and the OCS more than encoding them (`make bench`: the e2e rows; the OCS on VoltDB at 32 in flight).
The Diameter peer, the OCS's wire server and the gateway's wire client each write through one.
"""

from __future__ import annotations

import asyncio


class TurnWriter:
    """A transport's writes of one loop turn, joined; `flush` sends them now (before a close)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # the connection's loop, given once: on Python 3.11 `asyncio.get_running_loop()` is a
        # getpid system call, and the first write of every turn asked it
        self.loop = loop
        self.transport: asyncio.Transport | None = None  # set by the protocol's connection_made
        self._out: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._out:
            self.loop.call_soon(self.flush)
        self._out.append(data)

    def flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
