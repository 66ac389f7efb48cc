"""TurnWriter: what a connection writes in one loop turn leaves in one send, in order, and nothing
is sent on a transport that is closing (a recording transport stands in for the socket)."""

from __future__ import annotations

import asyncio
from typing import cast

from cellcelly.turn_writer import TurnWriter


class Recorder:
    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.sends.append(data)

    def is_closing(self) -> bool:
        return self.closing


def writer_on(transport: Recorder) -> TurnWriter:
    writer = TurnWriter(asyncio.get_running_loop())
    writer.transport = cast(asyncio.Transport, transport)
    return writer


async def test_one_send_a_loop_turn_in_order() -> None:
    transport = Recorder()
    writer = writer_on(transport)
    for part in (b"a", b"bb", b"ccc"):
        writer.write(part)
    assert transport.sends == []  # nothing until the turn ends
    await asyncio.sleep(0)
    assert transport.sends == [b"abbccc"]
    writer.write(b"d")
    await asyncio.sleep(0)
    assert transport.sends == [b"abbccc", b"d"]


async def test_flush_sends_now_and_the_turn_sends_nothing_more() -> None:
    transport = Recorder()
    writer = writer_on(transport)
    writer.write(b"answer")
    writer.flush()  # before a close: the answer goes first
    assert transport.sends == [b"answer"]
    await asyncio.sleep(0)
    assert transport.sends == [b"answer"]


async def test_nothing_is_sent_on_a_closing_transport() -> None:
    transport = Recorder()
    writer = writer_on(transport)
    writer.write(b"late")
    transport.closing = True
    await asyncio.sleep(0)
    assert transport.sends == []


async def test_a_limit_sends_what_is_held_once_it_is_reached() -> None:
    transport = Recorder()
    writer = TurnWriter(asyncio.get_running_loop(), limit=4)
    writer.transport = cast(asyncio.Transport, transport)
    writer.write(b"ab")
    assert transport.sends == []
    writer.write(b"cd")  # 4 bytes held: sent now, not at the turn's end
    assert transport.sends == [b"abcd"]
    writer.write(b"e")
    await asyncio.sleep(0)
    assert transport.sends == [b"abcd", b"e"]
