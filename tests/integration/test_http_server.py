"""`http_server` on a real socket (127.0.0.1): keep-alive answers, pipelined requests answered in
order, a `Connection: close` answered whole before the close (its writes are held to the loop
turn's end: `http_protocol.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest

from cellcelly.web import http_server


async def echo(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = scope["path"].encode() * 100
    headers = [(b"content-length", str(len(body)).encode())]
    if scope["path"] == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = http_server(echo, "127.0.0.1", 0, lifespan="off")
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    await task


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def test_keep_alive_and_pipelined_answers_in_order(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in ("/a", "/b"):
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            assert await read_answer(reader) == path.encode() * 100
        paths = [f"/p{i}" for i in range(20)]
        writer.write(b"".join(f"GET {p} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for p in paths))
        assert [await read_answer(reader) for _ in paths] == [p.encode() * 100 for p in paths]
    finally:
        writer.close()


async def test_a_close_comes_after_the_whole_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n")
        assert await read_answer(reader) == b"/close" * 100
        assert await reader.read() == b""  # then the server closes
    finally:
        writer.close()
