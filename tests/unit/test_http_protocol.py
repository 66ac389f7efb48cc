"""TurnHttpProtocol: uvicorn's HTTP/1.1 protocol whose writes of a loop turn leave in one send.

A recording transport stands in for the socket (tests/integration/test_http_protocol.py serves a
real one): a response is one send, made when the turn ends; pipelined answers stay in order and
whole; a close sends what was written first; a body larger than `FLUSH_AT` is sent as it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import uvicorn
from uvicorn.server import ServerState

from cellcelly.http_protocol import FLUSH_AT, TurnHttpProtocol

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Recorder:
    """A transport that keeps what is sent and whether it was closed, in the order they came."""

    def __init__(self) -> None:
        self.events: list[bytes | str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "a write after the close"
        self.events.append(data)

    def close(self) -> None:
        self.closing = True
        self.events.append("closed")

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def sends(self) -> list[bytes]:
        return [e for e in self.events if isinstance(e, bytes)]


def response(body: bytes, *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n"
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + body


async def echo_path(scope: MutableMapping[str, Any], receive: Any, send: Send) -> None:
    """Answers the request's path as its body; `/close` asks for the connection to be closed."""
    if scope["type"] != "http":
        return
    body = scope["path"].encode()
    headers = [(b"content-length", str(len(body)).encode())]
    if scope["path"] == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def connect(app: Any) -> tuple[TurnHttpProtocol, Recorder]:
    config = uvicorn.Config(app, http=TurnHttpProtocol, log_level="warning", lifespan="off")
    config.load()
    protocol = TurnHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Recorder()
    protocol.connection_made(cast(asyncio.Transport, transport))
    return protocol, transport


async def settle(transport: Recorder, sends: int) -> None:
    for _ in range(100):
        if len(transport.sends) >= sends:
            break
        await asyncio.sleep(0)
    for _ in range(10):  # anything more would come now
        await asyncio.sleep(0)


async def test_a_response_is_one_send() -> None:
    protocol, transport = connect(echo_path)
    protocol.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
    await settle(transport, 1)
    assert transport.sends == [response(b"/a")]  # head and body together: uvicorn writes them apart


async def test_pipelined_answers_come_whole_and_in_order() -> None:
    protocol, transport = connect(echo_path)
    protocol.data_received(b"GET /one HTTP/1.1\r\nhost: x\r\n\r\nGET /two HTTP/1.1\r\nhost: x\r\n\r\n")
    await settle(transport, 2)
    assert b"".join(transport.sends) == response(b"/one") + response(b"/two")
    assert all(
        send in (response(b"/one"), response(b"/two"), response(b"/one") + response(b"/two"))
        for send in transport.sends
    )


async def test_nothing_is_sent_before_the_turn_ends() -> None:
    sent_before_return: list[int] = []
    transport_of: list[Recorder] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Send) -> None:
        await echo_path(scope, receive, send)
        sent_before_return.append(len(transport_of[0].sends))

    protocol, transport = connect(app)
    transport_of.append(transport)
    protocol.data_received(b"GET /held HTTP/1.1\r\nhost: x\r\n\r\n")
    await settle(transport, 1)
    assert sent_before_return == [0]
    assert transport.sends == [response(b"/held")]


async def test_a_close_sends_what_was_written_first() -> None:
    protocol, transport = connect(echo_path)
    protocol.data_received(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n")
    await settle(transport, 1)
    assert transport.events == [response(b"/close", close=True), "closed"]


async def test_a_large_body_is_sent_as_it_is_written() -> None:
    chunk = b"x" * (FLUSH_AT // 2 + 1)
    seen: list[int] = []
    transport_of: list[Recorder] = []

    async def stream(scope: MutableMapping[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % (3 * len(chunk)))],
            }
        )
        for i in range(3):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < 2})
            seen.append(sum(map(len, transport_of[0].sends)))

    protocol, transport = connect(stream)
    transport_of.append(transport)
    protocol.data_received(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
    await settle(transport, 2)
    # the second chunk takes what is held past FLUSH_AT: sent then, within the turn
    assert seen[0] == 0 and seen[1] > 2 * len(chunk)
    assert b"".join(transport.sends).endswith(chunk * 3)
