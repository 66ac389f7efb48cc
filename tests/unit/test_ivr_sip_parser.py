"""SIP and SDP parsing, caller identity, RTP packets; the parser never fails except with SipError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.ivr.rtp import RtpSender
from cellcelly.ivr.service import caller_msisdn
from cellcelly.ivr.sip import (
    NotSip,
    SipError,
    name_addr,
    parse,
    parse_sdp,
    response,
    sdp_answer,
    split_commas,
    uri_hostport,
    uri_user,
)

pytestmark = pytest.mark.unit

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:5555@127.0.0.1:5060 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-0, SIP/2.0/UDP 10.2.2.2;branch=z9hG4bK-x\r\n"
    b'f: "Ay\xc5\x9fe" <sip:905321234567@127.0.0.1>;tag=abc\r\n'
    b"t: <sip:5555@127.0.0.1>\r\n"
    b"i: call-1@127.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Subject: a folded\r\n   header\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP + b"trailing bytes beyond Content-Length"
)


def test_parses_a_real_invite_with_compact_and_folded_headers() -> None:
    msg = parse(INVITE)
    assert msg.error is None
    assert (msg.method, msg.uri, msg.call_id, msg.cseq) == (
        "INVITE",
        "sip:5555@127.0.0.1:5060",
        "call-1@127.0.0.1",
        (7, "INVITE"),
    )
    assert msg.branch == "z9hG4bK-1"
    assert len(msg.all("Via")) == 3
    assert msg.get("Subject") == "a folded header"
    assert msg.body == SDP
    assert name_addr(msg.get("From") or "") == ("sip:905321234567@127.0.0.1", {"tag": "abc"})
    assert parse(msg.to_bytes()).headers == msg.headers


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda m: m.replace(b"i: call-1@127.0.0.1\r\n", b""), "missing Call-ID"),
        (lambda m: m.replace(b"CSeq: 7 INVITE", b"CSeq: 7 BYE"), "CSeq method"),
        (lambda m: m.replace(b"CSeq: 7 INVITE", b"CSeq: seven INVITE"), "bad CSeq"),
        (lambda m: m.replace(b"l: " + str(len(SDP)).encode(), b"l: 9999"), "Content-Length"),
        (lambda m: m.replace(b"t: <sip:5555@127.0.0.1>", b"t: nobody"), "not a SIP URI"),
        (lambda m: m.replace(b"Subject: a folded", b"Sub ject: a folded"), "bad header line"),
        (lambda m: m.replace(b"SIP/2.0\r\nv:", b"SIP/3.0\r\nv:"), "version"),
        (lambda m: m.replace(b"\xc5\x9f", b"\xff"), "not UTF-8"),
    ],
)
def test_malformed_requests_keep_enough_to_answer_400(mutate: object, error: str) -> None:
    assert callable(mutate)
    msg = parse(mutate(INVITE))
    assert msg.error is not None and error in msg.error
    assert msg.method == "INVITE"
    answer = response(msg, 400)
    assert answer.to_bytes().startswith(b"SIP/2.0 400 Bad Request\r\n")


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"\x00\x01", b"INVITE\r\n", b"SIP/2.0 99 x\r\n\r\n", b"x" * 70_000]
)
def test_not_sip_at_all(data: bytes) -> None:
    with pytest.raises(NotSip):
        parse(data)


@given(st.binary(max_size=2000))
def test_random_bytes_never_break_the_parser(data: bytes) -> None:
    try:
        parse(data)
    except SipError:
        pass


@given(st.integers(0, len(INVITE) - 1), st.integers(0, 255), st.integers(1, len(INVITE)))
def test_mutated_and_truncated_invites_never_break_the_parser(at: int, byte: int, cut: int) -> None:
    for data in (INVITE[:at] + bytes([byte]) + INVITE[at + 1 :], INVITE[:cut]):
        try:
            msg = parse(data)
        except SipError:
            continue
        if msg.is_request and msg.error is None:
            msg.to_bytes()
            _ = msg.cseq, msg.branch, msg.call_id


def test_sdp_finds_pcmu_among_other_codecs() -> None:
    offer = parse_sdp(SDP)
    assert (offer.address, offer.port, offer.payload_type, offer.direction) == (
        "10.0.0.1",
        4000,
        0,
        "sendrecv",
    )
    dynamic = parse_sdp(
        b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\na=recvonly\r\n"
    )
    assert (dynamic.payload_type, dynamic.direction) == (96, "recvonly")
    assert parse_sdp(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 8\r\n").payload_type is None
    # a rejected (port 0) video stream before the audio one; media-level c= wins
    media = parse_sdp(
        b"c=IN IP4 1.1.1.1\r\nm=video 0 RTP/AVP 31\r\nm=audio 6000 RTP/AVP 0\r\nc=IN IP4 2.2.2.2\r\n"
    )
    assert (media.address, media.port) == ("2.2.2.2", 6000)
    for bad in (b"", b"m=audio 4000 RTP/AVP 0\r\n", b"c=IN IP4 1.1.1.1\r\nm=audio x RTP/AVP 0\r\n", b"\xff"):
        with pytest.raises(SipError):
            parse_sdp(bad)


def test_our_answer_is_pcmu_at_20ms() -> None:
    answer = sdp_answer("127.0.0.1", 40000, 0, 42, "sendrecv")
    assert b"m=audio 40000 RTP/AVP 0\r\n" in answer and b"a=rtpmap:0 PCMU/8000\r\n" in answer
    assert parse_sdp(answer).port == 40000


def test_uri_parts_and_comma_lists() -> None:
    assert uri_user("sip:+90-532-123-45-67;user=phone@host") == "+905321234567"
    assert uri_user("tel:+905321234567;phone-context=x") == "+905321234567"
    assert uri_user("sip:host.example") == ""
    assert uri_hostport("sip:5555@127.0.0.1:5070;transport=udp") == ("127.0.0.1", 5070)
    assert uri_hostport("sip:[::1]:5080") == ("::1", 5080)
    assert uri_hostport("sip:a@b") == ("b", 5060)
    assert split_commas('"Doe, J" <sip:a@b>, <sip:c@d;x=1,2>') == ['"Doe, J" <sip:a@b>', "<sip:c@d;x=1,2>"]


@pytest.mark.parametrize(
    ("headers", "msisdn"),
    [
        (b"From: <sip:905321234567@h>;tag=1\r\n", "5321234567"),
        (b"From: <sip:+905321234567@h>;tag=1\r\n", "5321234567"),
        (b"From: sip:5321234567@h;tag=1\r\n", "5321234567"),
        (b"From: <sip:05321234567@h>;tag=1\r\n", "5321234567"),
        (b"From: <sip:005321234567@h>;tag=1\r\n", None),
        (b"From: <sip:anonymous@h>;tag=1\r\nP-Asserted-Identity: <tel:+905331112233>\r\n", "5331112233"),
        (b"From: <sip:5321234567@h>;tag=1\r\nP-Asserted-Identity: <sip:bad@h>\r\n", "5321234567"),
        (b"From: <sip:anonymous@h>;tag=1\r\n", None),
        (b"From: <sip:4321234567@h>;tag=1\r\n", None),
    ],
)
def test_caller_identity(headers: bytes, msisdn: str | None) -> None:
    msg = parse(
        b"INVITE sip:5555@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        + headers
        + b"To: <sip:5555@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    assert msg.error is None
    assert caller_msisdn(msg) == msisdn


def test_rtp_packets() -> None:
    sender = RtpSender(payload_type=0, ssrc=0xDEADBEEF, sequence=0xFFFF, timestamp=0xFFFFFF00)
    packets = list(sender.packets(bytes(range(200)) * 2))  # 400 bytes: 3 frames, the last padded
    assert len(packets) == 3 and all(len(p) == 172 for p in packets)
    headers = [struct.unpack("!BBHII", p[:12]) for p in packets]
    assert headers == [
        (0x80, 0x80, 0xFFFF, 0xFFFFFF00, 0xDEADBEEF),
        (0x80, 0x00, 0x0000, 0xFFFFFFA0, 0xDEADBEEF),
        (0x80, 0x00, 0x0001, 0x00000040, 0xDEADBEEF),
    ]
    assert packets[2][12 + 80 :] == b"\xff" * 80
