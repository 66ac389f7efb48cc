"""One send per loop turn: what a connection writes in one turn of the event loop leaves in one send.

Under load several answers (or requests) finish in the same turn, and a send each cost the gateway
and the OCS more than encoding them (`make bench`: the e2e rows; the OCS on VoltDB at 32 in flight).
The Diameter peer, the OCS's wire server and the gateway's wire client each write through one, and
every HTTP connection (`http_protocol.py`).
"""

from __future__ import annotations

import asyncio


class TurnWriter:
    """A transport's writes of one loop turn, joined; `flush` sends them now (before a close).

    `limit` (bytes; 0: none) sends what is held as soon as it reaches that much, so that a writer
    of a large body within one turn meets the transport's own flow control rather than memory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = 0) -> None:
        # the connection's loop, given once: on Python 3.11 `asyncio.get_running_loop()` is a
        # getpid system call, and the first write of every turn asked it
        self.loop = loop
        self.limit = limit
        self.transport: asyncio.Transport | None = None  # set by the protocol's connection_made
        self._out: list[bytes] = []
        self._held = 0  # bytes in `_out`, counted only with a limit

    def write(self, data: bytes) -> None:
        if not self._out:
            self.loop.call_soon(self.flush)
        self._out.append(data)
        if self.limit:
            self._held += len(data)
            if self._held >= self.limit:
                self.flush()

    def flush(self) -> None:
        out, self._out, self._held = self._out, [], 0
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
