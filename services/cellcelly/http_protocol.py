"""uvicorn's HTTP/1.1 protocol (httptools) with one send per connection a loop turn.

uvicorn writes a response's head and its body in two sends, each at once. On a busy server each
send to a client that sleeps wakes it: a cross-core wake-up, in a VM an exit to the hypervisor,
which the sender pays inside its `send` (`perf` of the OCS under `make bench`'s HTTP row, charging:
8.8% of its CPU in waking the client from the loopback's receive, 13 µs a request; for `/noop`, whose
client sleeps less, 3 µs). Held until the loop turn ends, a response leaves in one send, and the
answers of one turn leave together, so a client woken by the first finds the rest already there
(docs/performance-log.md, "2026-12-07"; issue 16).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cellcelly.turn_writer import TurnWriter

# what a connection may hold before it sends anyway: the transports' own high-water mark (64 KiB),
# so a large streamed body still meets their flow control
FLUSH_AT = 64 * 1024


class TurnTransport:
    """A transport whose writes of a loop turn are joined (`TurnWriter`); the rest is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._writer = TurnWriter(loop, FLUSH_AT)
        self._writer.transport = transport

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.flush()  # what was written goes before the close, as the transport would send it
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TurnHttpProtocol(HttpToolsProtocol):
    """`http_server`'s protocol: uvicorn's, its connection's writes through a `TurnTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = cast(asyncio.Transport, TurnTransport(transport, self.loop))
