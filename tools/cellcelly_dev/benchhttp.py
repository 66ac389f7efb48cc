"""The HTTP load driver of `make bench`: keep-alive connections on 127.0.0.1, raw HTTP/1.1.

Raw bytes rather than an HTTP client library, so the figures are the server's, not the client's:
the load generator must cost less per request than what it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable


async def drive(
    port: int,
    seconds: float,
    connections: int,
    script: Callable[[int], Iterable[bytes]],
    keep: list[bytes] | None = None,
) -> tuple[int, int, list[int], float]:
    """Run script(0), script(1), ... (each a sequence of requests, sent one after the other on one
    connection) on `connections` connections until `seconds` have passed; a script under way is
    finished. Returns (requests, non-2xx answers, latencies in ns, seconds); the bodies of 2xx
    answers go to `keep` when given."""
    state = {"next": 0, "ops": 0, "errors": 0}
    latencies: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while clock() < deadline:
                i = state["next"]
                state["next"] += 1
                for raw in script(i):
                    t0 = clock()
                    writer.write(raw)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    body = await reader.readexactly(length)
                    latencies.append(clock() - t0)
                    state["ops"] += 1
                    if head[9:10] != b"2":
                        state["errors"] += 1
                    elif keep is not None:
                        keep.append(body)
        finally:
            writer.close()

    start = clock()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return state["ops"], state["errors"], latencies, (clock() - start) / 1e9
