"""Calls from a real SIP caller (SIPp, Debian sip-tester) to the IVR on 127.0.0.1.

SIPp does all the signalling (INVITE, ACK, and the 200 OK to the IVR's BYE); its SDP points the
IVR's audio at a UDP socket of the test, which records every RTP packet as it arrives. The
subscriber lives in a real embedded balance store opened through the account service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import shutil
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.deploy.backends import Backends, open_backends
from cellcelly.ivr.g711 import ULAW_TO_LINEAR
from cellcelly.ivr.prompt import PromptAudio
from cellcelly.ivr.service import IvrService
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly_dev.devservers import free_port
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
SCENARIOS = Path(__file__).parent.parent / "ivr"
SUBSCRIBER = SubscriberRecord("5321234567", "Ayşe", "Yılmaz", "ayse@example.com", "active", "DIYARBAKIR")
STRANGER = "905559998877"  # not a subscriber
SPEED = 190  # words per minute: the same voice a little faster, to keep the calls short


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool, package in (("sipp", "sip-tester"), ("espeak-ng", "espeak-ng"), ("sox", "sox")):
        require(shutil.which(tool) is not None, f"{tool} not installed: apt-get install {package}")


@dataclass
class Ivr:
    service: IvrService
    components: Backends
    audio: PromptAudio
    workdir: Path


@pytest.fixture
async def ivr(data_dir: Path, tmp_path: Path) -> AsyncIterator[Ivr]:
    components = open_backends(Settings(data_dir=data_dir))
    components.accounts.open(dataclasses.replace(SUBSCRIBER, created_at=int(time.time())))
    audio = PromptAudio(speed=SPEED)
    service = IvrService(
        "127.0.0.1", 0, StoreBalanceLookup(components.store), audio=audio, trusted_peers="127.0.0.1"
    )
    await service.start()
    try:
        yield Ivr(service, components, audio, tmp_path)
    finally:
        await service.stop()
        components.close()


@dataclass
class Recorder(asyncio.DatagramProtocol):
    """The caller's media port: every RTP packet with its arrival time."""

    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((time.monotonic(), data))

    def payload(self) -> bytes:
        return b"".join(p[12:] for _, p in self.packets)


@dataclass
class Result:
    returncode: int
    output: str
    recorder: Recorder


async def sipp(
    ivr: Ivr, scenario: str, *, caller: str, dial: str = "5555", status: int | None = None, codec: int = 0
) -> Result:
    loop = asyncio.get_running_loop()
    transport, recorder = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
    path = SCENARIOS / scenario
    if status is not None:  # fill the template's expected status
        path = ivr.workdir / f"{status}-{scenario}"
        path.write_text((SCENARIOS / scenario).read_text().replace("[status]", str(status)))
    argv = ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port())]
    argv += ["-m", "1", "-s", dial, "-key", "caller", caller]
    argv += ["-key", "rtp_port", str(transport.get_extra_info("sockname")[1])]
    argv += ["-key", "codec", str(codec), "-key", "codec_name", {0: "PCMU", 8: "PCMA"}[codec]]
    argv += ["-nostdin", "-timeout", "75s", "-timeout_error", "-trace_err", "-trace_msg"]
    argv += [f"127.0.0.1:{ivr.service.port}"]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ivr.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    await asyncio.sleep(0.05)
    transport.close()
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in ivr.workdir.glob("*.log"))
    return Result(proc.returncode or 0, out.decode(errors="replace")[-2000:] + logs, recorder)


def check_rtp(recorder: Recorder) -> None:
    """RFC 3550 headers as a receiver checks them; frames paced at 20 ms."""
    assert recorder.packets, "no RTP received"
    first = struct.unpack("!BBHII", recorder.packets[0][1][:12])
    for i, (_, packet) in enumerate(recorder.packets):
        byte0, byte1, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
        assert byte0 == 0x80, "version 2, no padding, no extension, no CSRC"
        assert byte1 & 0x7F == 0, "payload type 0 (PCMU)"
        assert bool(byte1 & 0x80) == (i == 0), "marker bit on the first packet only"
        assert seq == (first[2] + i) & 0xFFFF
        assert ts == (first[3] + 160 * i) & 0xFFFFFFFF
        assert ssrc == first[4]
        assert len(packet) == 12 + 160
    span = recorder.packets[-1][0] - recorder.packets[0][0]
    expected = (len(recorder.packets) - 1) * 0.020
    assert abs(span - expected) < 0.25 + 0.02 * expected, (span, expected)


def rms(ulaw: bytes) -> float:
    return math.sqrt(sum(ULAW_TO_LINEAR[b] ** 2 for b in ulaw) / max(1, len(ulaw)))


def assert_speech(ulaw: bytes) -> None:
    assert rms(ulaw) > 500, "silence"
    frames = [rms(ulaw[i : i + 160]) for i in range(0, len(ulaw) - 160, 160)]
    assert max(frames) > 20 * max(1.0, min(frames)), "no pauses: not speech"
    assert len(set(ulaw)) > 64, "too few distinct codes: not speech"


async def test_known_subscriber_hears_the_balance(ivr: Ivr) -> None:
    result = await sipp(ivr, "call.xml", caller="90" + SUBSCRIBER.msisdn)
    assert result.returncode == 0, result.output
    check_rtp(result.recorder)
    summary = await StoreBalanceLookup(ivr.components.store)(SUBSCRIBER.msisdn)
    assert summary is not None and summary.wallet > 0
    expected = await ivr.audio.ulaw(summary)
    heard = result.recorder.payload()
    # what arrived is the prompt for these figures, whole (the last frame padded with silence)
    assert len(heard) == math.ceil(len(expected) / 160) * 160
    assert heard[: len(expected)] == expected
    duration = len(result.recorder.packets) * 0.020
    span = result.recorder.packets[-1][0] - result.recorder.packets[0][0]
    assert abs(span + 0.020 - len(expected) / 8000) < 0.5, (span, len(expected) / 8000)
    assert 8 < duration < 60
    assert_speech(heard)
    assert heard != await ivr.audio.ulaw(None)
    assert ivr.service.stats["answered"] == 1 and ivr.service.stats["byes_answered"] == 1


async def test_unknown_caller_hears_the_shorter_polite_message(ivr: Ivr) -> None:
    result = await sipp(ivr, "call.xml", caller="+" + STRANGER)
    assert result.returncode == 0, result.output
    check_rtp(result.recorder)
    polite = await ivr.audio.ulaw(None)
    heard = result.recorder.payload()
    assert heard[: len(polite)] == polite and len(heard) - len(polite) < 160
    assert_speech(heard)
    summary = await StoreBalanceLookup(ivr.components.store)(SUBSCRIBER.msisdn)
    assert len(heard) < len(await ivr.audio.ulaw(summary))


async def test_a_call_to_another_number_gets_404(ivr: Ivr) -> None:
    result = await sipp(ivr, "rejected.xml", caller=SUBSCRIBER.msisdn, dial="4444", status=404)
    assert result.returncode == 0, result.output
    assert not result.recorder.packets
    assert ivr.service.stats["rejected_404"] == 1


async def test_an_offer_without_pcmu_gets_488(ivr: Ivr) -> None:
    result = await sipp(ivr, "rejected.xml", caller=SUBSCRIBER.msisdn, status=488, codec=8)
    assert result.returncode == 0, result.output
    assert not result.recorder.packets


async def test_garbage_datagrams_do_not_stop_the_service(ivr: Ivr) -> None:
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            replies.append(data)

    transport, _ = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    target = ("127.0.0.1", ivr.service.port)
    garbage = [
        os.urandom(1),
        os.urandom(1400),
        b"\x00" * 64,
        b"INVITE\r\n\r\n",
        b"SIP/2.0 999999 Nope\r\n\r\n",
        b"INVITE sip:5555@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport\r\n"
        b"Content-Length: x\r\n\r\n",
        b"INVITE sip:5555@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport\r\n\r\n",
        "BYE sip:5555@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;rport\r\nFrom: ğüşiöç\r\n\r\n".encode(),
        b"\xff\xfe" + "INVITE sip:5555@x SIP/2.0".encode("utf-16"),
    ]
    for datagram in garbage:
        transport.sendto(datagram, target)
    await asyncio.sleep(0.3)
    transport.close()
    # the three parseable-but-bad requests were answered 400; the rest dropped
    assert sum(r.startswith(b"SIP/2.0 400 Bad Request") for r in replies) == 3, replies
    assert ivr.service.stats["dropped"] == 6
    result = await sipp(ivr, "call.xml", caller=STRANGER)
    assert result.returncode == 0, result.output
    assert_speech(result.recorder.payload())


async def test_two_subscribers_calling_at_once_each_hear_their_own_figures(ivr: Ivr) -> None:
    other = dataclasses.replace(
        SUBSCRIBER, msisdn="5337654321", email="b@example.com", created_at=int(time.time())
    )
    ivr.components.accounts.open(other)
    ivr.components.accounts.top_up(other.msisdn, 4250, "test-topup")  # other figures than the first
    lookup = StoreBalanceLookup(ivr.components.store)
    first, second = await asyncio.gather(
        sipp(ivr, "call.xml", caller=SUBSCRIBER.msisdn), sipp(ivr, "call.xml", caller="0" + other.msisdn)
    )
    assert first.returncode == 0 and second.returncode == 0, first.output + second.output
    mine, theirs = await lookup(SUBSCRIBER.msisdn), await lookup(other.msisdn)
    assert mine is not None and theirs is not None and mine.wallet != theirs.wallet
    for result, summary in ((first, mine), (second, theirs)):
        expected = await ivr.audio.ulaw(summary)
        assert result.recorder.payload()[: len(expected)] == expected
    assert first.recorder.payload() != second.recorder.payload()
