"""The gateway's callback path (`OcsClient.charge_soon`): each way an OCS request can end settles the
future the peer answers from as the task path's `_charge` would, and leaves nothing in flight."""

from __future__ import annotations

import asyncio

import pytest

from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import Answered, NoopOcs, OcsUnavailable
from cellcelly.diameter.ccr import build_ccr
from cellcelly.diameter.codec import Message, decode
from cellcelly.diameter.constants import FLAG_E, RequestType, Result
from cellcelly.diameter.peer import LocalPeer, PeerConnection
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

LOCAL = LocalPeer("dgw.test", "cellcelly.local")
CLIENT = LocalPeer("pgw.test", "client.realm")


class SoonOcs:
    """Answers from a callback on the next loop turn with what `outcome` gives for the request."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.noop = NoopOcs()
        self.soon: list[str] = []
        self.charged: list[str] = []

    async def charge(self, req: ChargeRequest) -> ChargeAnswer:
        self.charged.append(req.session_id)
        return await self.noop.charge(req)

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        if self.outcome == "refuse":
            return False
        self.soon.append(req.session_id)
        loop = asyncio.get_running_loop()
        if self.outcome == "answer":
            task = loop.create_task(self.noop.charge(req))
            task.add_done_callback(lambda t: done(t.result(), None))
        else:
            failure: BaseException = {
                "unavailable": OcsUnavailable("no OCS endpoint answered"),
                "broken": RuntimeError("an answer that could not be read"),
                "cancelled": asyncio.CancelledError(),
            }[self.outcome]
            loop.call_soon(done, None, failure)
        return True


def peer_conn() -> PeerConnection:
    conn = PeerConnection(LOCAL)
    conn.remote_host, conn.remote_realm = CLIENT.origin_host, CLIENT.origin_realm
    return conn


def ccr(session: str, number: int = 0) -> Message:
    msg = build_ccr(
        session_id=session,
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=RequestType.INITIAL if number == 0 else RequestType.UPDATE,
        request_number=number,
        msisdn="5321112233",
        service="voice",
    )
    msg.hop_by_hop, msg.end_to_end = 1 + number, 100 + number
    return decode(msg.encode())


async def test_an_answer_is_the_cca_kept_for_a_retransmission() -> None:
    ocs = SoonOcs("answer")
    gateway = Gateway(LOCAL, ocs)
    pending = gateway(peer_conn(), ccr("s;1"))
    assert isinstance(pending, asyncio.Future) and not isinstance(pending, asyncio.Task)
    again = gateway(peer_conn(), ccr("s;1"))  # a retransmission while in flight joins it
    sent = await pending
    assert isinstance(sent, bytes)
    cca = decode(sent)
    assert cca.result_code == Result.SUCCESS and cca.session_id == "s;1"
    assert isinstance(again, asyncio.Future)
    joined = await again
    assert isinstance(joined, Message) and joined.encode() == sent
    replayed = gateway(peer_conn(), ccr("s;1"))  # answered: from the kept bytes
    assert isinstance(replayed, Message) and replayed.encode() == sent
    assert ocs.soon == ["s;1"] and ocs.charged == []
    assert gateway.in_flight == 0 and gateway.stats.results == {2001: 1}
    assert "s;1" in gateway.sessions


async def test_no_ocs_is_3002_and_not_kept() -> None:
    gateway = Gateway(LOCAL, SoonOcs("unavailable"))
    pending = gateway(peer_conn(), ccr("s;2"))
    assert isinstance(pending, asyncio.Future)
    cca = decode(await pending)
    assert cca.result_code == Result.UNABLE_TO_DELIVER and cca.flags & FLAG_E
    assert gateway.stats.ocs_unavailable == 1 and gateway.in_flight == 0
    again = gateway(peer_conn(), ccr("s;2"))  # not kept: asked again
    assert isinstance(again, asyncio.Future)
    await again


@pytest.mark.parametrize("outcome", ["broken", "cancelled"])
async def test_a_failure_reaches_the_peer_and_nothing_stays_in_flight(outcome: str) -> None:
    gateway = Gateway(LOCAL, SoonOcs(outcome))
    pending = gateway(peer_conn(), ccr("s;3"))
    assert isinstance(pending, asyncio.Future)
    if outcome == "broken":  # the peer answers it 5012 (`PeerConnection._answer_later`)
        with pytest.raises(RuntimeError, match="could not be read"):
            await pending
    else:  # the gateway stopping: nothing to answer with
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert pending.cancelled()
    assert gateway.in_flight == 0 and gateway.stats.results == {}


async def test_a_client_that_cannot_send_at_once_is_charged_in_a_task() -> None:
    ocs = SoonOcs("refuse")
    gateway = Gateway(LOCAL, ocs)
    pending = gateway(peer_conn(), ccr("s;4"))
    assert isinstance(pending, asyncio.Task)
    assert decode(await pending).result_code == Result.SUCCESS
    assert ocs.charged == ["s;4"] and gateway.in_flight == 0
