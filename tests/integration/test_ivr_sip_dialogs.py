"""SIP edge cases against the IVR on 127.0.0.1, driven by a raw UDP client of the test (SIPp cannot
easily retransmit on purpose, cancel mid-ring or hang up mid-prompt): retransmissions, CANCEL,
caller's BYE, late offer, missing ACK, re-INVITE, unknown dialogs and methods, a failing lookup,
and callers whose identity is not to be believed (not from a trusted peer)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.deploy.backends import open_backends
from cellcelly.domain.balance_summary import BalanceSummary
from cellcelly.ivr.prompt import SERVICE_UNAVAILABLE, PromptAudio
from cellcelly.ivr.service import IvrService
from cellcelly.ivr.sip import SipMessage, parse, parse_sdp
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SUBSCRIBER = SubscriberRecord("5321234567", "Ayşe", "Yılmaz", "ayse@example.com", "active", "DIYARBAKIR")


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("espeak-ng", "sox"):
        require(shutil.which(tool) is not None, f"{tool} not installed: apt-get install {tool}")


@dataclass
class Peer(asyncio.DatagramProtocol):
    """A UDP socket that queues what it receives (SIP messages, or raw RTP)."""

    received: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport for UDP does not subclass DatagramTransport: no isinstance)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def next(self, timeout: float = 5.0) -> SipMessage:
        return parse(await asyncio.wait_for(self.received.get(), timeout))

    async def expect(self, status: int, timeout: float = 5.0) -> SipMessage:
        """The next response with `status`, skipping provisional ones."""
        while True:
            msg = await self.next(timeout)
            if msg.status == status:
                return msg
            assert 100 <= msg.status < 200, f"expected {status}, got {msg.status} {msg.reason}"

    def drain(self) -> list[bytes]:
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items


async def open_peer() -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return peer


@dataclass
class Caller:
    sip: Peer
    rtp: Peer
    ivr_port: int
    call_id: str = "call-1@test"
    user: str = "905321234567"

    def send(self, data: bytes) -> None:
        assert self.sip.transport is not None
        self.sip.transport.sendto(data, ("127.0.0.1", self.ivr_port))

    def sdp(self) -> bytes:
        return (
            f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()

    def request(
        self,
        method: str,
        *,
        cseq: int = 1,
        branch: str = "z9hG4bK-inv",
        to_tag: str | None = None,
        body: bytes = b"",
        dial: str = "5555",
        cseq_method: str | None = None,
    ) -> bytes:
        to = f"<sip:{dial}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        head = [
            f"{method} sip:{dial}@127.0.0.1:{self.ivr_port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch={branch};rport",
            f"From: <sip:{self.user}@127.0.0.1>;tag=caller1",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {cseq_method or method}",
            f"Contact: <sip:{self.user}@127.0.0.1:{self.sip.port}>",
            "Max-Forwards: 70",
        ]
        if body:
            head.append("Content-Type: application/sdp")
        head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def ack(self, to_tag: str, body: bytes = b"", branch: str = "z9hG4bK-ack") -> None:
        self.send(self.request("ACK", branch=branch, to_tag=to_tag, body=body))

    async def answered(self) -> tuple[SipMessage, str]:
        """INVITE with our SDP; returns the 200 OK and the IVR's tag."""
        self.send(self.request("INVITE", body=self.sdp()))
        ok = await self.sip.expect(200)
        return ok, tag_of(ok)


def tag_of(msg: SipMessage) -> str:
    return (msg.get("To") or "").split("tag=", 1)[1]


@dataclass
class Env:
    service: IvrService
    audio: PromptAudio
    caller: Caller
    lookup: Callable[[str], object]


@pytest.fixture
async def env(data_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    components = open_backends(Settings(data_dir=data_dir))
    components.accounts.open(dataclasses.replace(SUBSCRIBER, created_at=int(time.time())))
    lookup = StoreBalanceLookup(components.store)
    options = getattr(request, "param", {})
    audio = PromptAudio(speed=220)
    kw = {"trusted_peers": "127.0.0.1", **options.get("kw", {})}  # the tests' SIP peer is on loopback
    service = IvrService("127.0.0.1", 0, options.get("lookup", lookup), audio=audio, **kw)
    await service.start()
    caller = Caller(await open_peer(), await open_peer(), service.port)
    try:
        yield Env(service, audio, caller, lookup)
    finally:
        for peer in (caller.sip, caller.rtp):
            assert peer.transport is not None
            peer.transport.close()
        await service.stop()
        components.close()


async def test_options_answers_200_with_allow(env: Env) -> None:
    env.caller.send(env.caller.request("OPTIONS", branch="z9hG4bK-opt"))
    ok = await env.caller.sip.expect(200)
    assert "INVITE" in (ok.get("Allow") or "") and ok.get("Accept") == "application/sdp"
    assert f"received=127.0.0.1;rport={env.caller.sip.port}" in (ok.get("Via") or "")


async def test_retransmitted_invite_gets_the_same_answer_and_caller_bye_stops_the_audio(env: Env) -> None:
    caller = env.caller
    invite = caller.request("INVITE", body=caller.sdp())
    caller.send(invite)
    trying = await caller.sip.next()
    assert trying.status == 100
    ok = await caller.sip.expect(200)
    caller.send(invite)  # as if our 200 had been lost: the very same 200 comes back
    again = await caller.sip.next()
    assert again.to_bytes() == ok.to_bytes()
    assert env.service.stats["invites"] == 1
    offer = parse_sdp(ok.body)
    assert (offer.address, offer.payload_type) == ("127.0.0.1", 0)
    caller.ack(tag_of(ok))
    await asyncio.wait_for(caller.rtp.received.get(), 2)  # the prompt is playing
    caller.send(caller.request("BYE", cseq=2, branch="z9hG4bK-bye", to_tag=tag_of(ok)))
    bye_ok = await caller.sip.expect(200)
    assert bye_ok.cseq == (2, "BYE")
    await asyncio.sleep(0.1)
    caller.rtp.drain()
    await asyncio.sleep(0.3)
    assert caller.rtp.drain() == [], "RTP kept flowing after BYE"
    assert env.service.stats["byes_answered"] == 0  # the IVR did not send a BYE of its own


@pytest.mark.parametrize("env", [{"kw": {"t1": 0.05}}], indirect=True)
async def test_200_is_resent_until_ack_and_a_missing_ack_ends_with_bye(env: Env) -> None:
    caller = env.caller
    caller.send(caller.request("INVITE", body=caller.sdp()))
    ok = await caller.sip.expect(200)
    again = await caller.sip.expect(200, timeout=1)
    assert again.to_bytes() == ok.to_bytes()
    bye: SipMessage | None = None
    while bye is None:  # no ACK ever: after 64*T1 the IVR gives up with a BYE
        msg = await caller.sip.next(timeout=6)
        if msg.method == "BYE":
            bye = msg
        else:
            assert msg.status == 200
    assert bye.call_id == caller.call_id and f"tag={tag_of(ok)}" in (bye.get("From") or "")
    assert caller.rtp.drain() == []


@pytest.mark.parametrize("env", [{"kw": {"ring_seconds": 3.0}}], indirect=True)
async def test_cancel_while_ringing_ends_with_487(env: Env) -> None:
    caller = env.caller
    caller.send(caller.request("INVITE", body=caller.sdp()))
    assert (await caller.sip.next()).status == 100
    ringing = await caller.sip.next()
    assert ringing.status == 180
    caller.send(caller.request("CANCEL", branch="z9hG4bK-inv"))
    answers = {(m.status, m.cseq[1]) for m in [await caller.sip.next(), await caller.sip.next()]}
    assert answers == {(200, "CANCEL"), (487, "INVITE")}
    caller.ack(tag_of(ringing), branch="z9hG4bK-inv")
    await asyncio.sleep(3.5)
    assert caller.rtp.drain() == [] and [parse(d).status for d in caller.sip.drain()] == []


async def test_unknown_dialogs_and_methods(env: Env) -> None:
    caller = env.caller
    caller.send(caller.request("BYE", to_tag="nope", branch="z9hG4bK-b"))
    assert (await caller.sip.next()).status == 481
    caller.send(caller.request("CANCEL", branch="z9hG4bK-c"))
    assert (await caller.sip.next()).status == 481
    caller.send(caller.request("MESSAGE", branch="z9hG4bK-m"))
    assert (await caller.sip.next()).status == 405
    caller.send(caller.request("FROBNICATE", branch="z9hG4bK-f"))
    assert (await caller.sip.next()).status == 501
    caller.send(caller.request("INVITE", to_tag="stale", body=caller.sdp()))
    assert (await caller.sip.next()).status == 481
    caller.send(caller.request("INVITE", dial="5555", cseq=1, cseq_method="BYE", branch="z9hG4bK-x"))
    bad = await caller.sip.next()
    assert bad.status == 400 and "CSeq" in (bad.get("Warning") or "")


async def test_late_offer_the_sdp_comes_with_the_ack(env: Env) -> None:
    caller = env.caller
    caller.send(caller.request("INVITE"))  # no SDP: our 200 makes the offer
    ok = await caller.sip.expect(200)
    offer = parse_sdp(ok.body)
    assert offer.payload_type == 0
    caller.ack(tag_of(ok), body=caller.sdp())
    packet = await asyncio.wait_for(caller.rtp.received.get(), 2)
    assert packet[1] == 0x80  # marker + PT 0


async def test_reinvite_keeps_the_session(env: Env) -> None:
    caller = env.caller
    ok, tag = await caller.answered()
    caller.ack(tag)
    caller.send(caller.request("INVITE", cseq=2, branch="z9hG4bK-re", to_tag=tag, body=caller.sdp()))
    again = await caller.sip.expect(200)
    assert again.cseq == (2, "INVITE") and again.body == ok.body


async def _broken_lookup(msisdn: str) -> BalanceSummary | None:
    raise ConnectionError("balance store unreachable")


@pytest.mark.parametrize("env", [{"lookup": _broken_lookup}], indirect=True)
async def test_a_failing_lookup_plays_an_apology(env: Env) -> None:
    caller = env.caller
    _, tag = await caller.answered()
    caller.ack(tag)
    bye: SipMessage | None = None
    while bye is None:
        msg = await caller.sip.next(timeout=30)
        bye = msg if msg.method == "BYE" else None
    payload = b"".join(p[12:] for p in caller.rtp.drain())
    apology = await env.audio.ulaw_for(SERVICE_UNAVAILABLE)
    assert payload[: len(apology)] == apology


class _Lookups:
    """A lookup that records whose balance it was asked for (and answers nothing)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, msisdn: str) -> BalanceSummary | None:
        self.asked.append(msisdn)
        return None


SPY = _Lookups()


@pytest.mark.parametrize(
    "env",
    [
        {"lookup": SPY, "kw": {"trusted_peers": "10.0.0.0/8, 192.0.2.7"}},
        {"lookup": SPY, "kw": {"trusted_peers": ""}},  # nothing configured: nobody is believed
    ],
    indirect=True,
)
async def test_an_invite_from_an_untrusted_peer_is_refused_with_403(env: Env) -> None:
    """Anyone can write From/P-Asserted-Identity: from an address that is not a trusted peer the
    IVR neither looks the number up nor sends media (the SDP could name a stranger's address)."""
    SPY.asked.clear()
    caller = env.caller
    caller.send(caller.request("INVITE", body=caller.sdp()))
    refused = await caller.sip.expect(403)
    assert "not a trusted SIP peer" in (refused.get("Warning") or "")
    caller.ack(tag_of(refused), branch="z9hG4bK-inv")
    await asyncio.sleep(0.5)
    assert SPY.asked == [] and caller.rtp.drain() == []
    assert env.service.stats["invites"] == 0 and env.service.stats["rejected_403"] == 1
    assert [parse(d).status for d in caller.sip.drain()] == []  # the ACK ended the transaction


@pytest.mark.parametrize(
    "env", [{"lookup": SPY, "kw": {"trusted_peers": "192.0.2.0/24,127.0.0.0/8"}}], indirect=True
)
async def test_a_trusted_peer_asserts_the_caller_and_is_believed(env: Env) -> None:
    SPY.asked.clear()
    caller = env.caller
    invite = caller.request("INVITE", body=caller.sdp()).replace(
        b"Max-Forwards: 70", b"Max-Forwards: 70\r\nP-Asserted-Identity: <sip:+905339998877@127.0.0.1>"
    )
    caller.send(invite)
    await caller.sip.expect(200, timeout=15)
    assert SPY.asked == ["5339998877"]  # the asserted identity, not the From (905321234567)
