"""GSM 03.38 / UCS-2 text, concatenation and reassembly: exact limits, never a split escape or
surrogate pair, and property round trips for any text (Turkish and emoji included)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.sms.encoding import (
    DCS_GSM7,
    DCS_UCS2,
    GSM7_PART,
    UCS2_PART,
    Concat,
    Incoming,
    MessageTooLong,
    Reassembler,
    Segment,
    decode_gsm7,
    decode_text,
    encode_text,
    gsm7_septets,
    parse_incoming,
)
from cellcelly.sms.pdu import ESM_UDHI, ShortMessage, Tag
from cellcelly_testing import FakeClock

pytestmark = pytest.mark.unit
PROPS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"


def decode_segments(segments: list[Segment]) -> str:
    """The receiving handset's view: strip each UDH, check it, join the payloads, decode."""
    payloads = []
    total = len(segments)
    reference = None
    for n, segment in enumerate(segments, 1):
        data = segment.short_message
        if total == 1:
            assert segment.esm_class == 0
            payloads.append(data)
            continue
        assert segment.esm_class == ESM_UDHI
        assert data[:3] == b"\x05\x00\x03" and data[4] == total and data[5] == n
        reference = data[3] if reference is None else reference
        assert data[3] == reference
        payloads.append(data[6:])
    return decode_text(b"".join(payloads), segments[0].data_coding)


def test_turkish_letters_in_gsm7_and_those_that_force_ucs2() -> None:
    assert encode_text("Gün öğlen")[0].data_coding == DCS_UCS2  # ğ
    assert encode_text("ÇÖÜ öü")[0].data_coding == DCS_GSM7
    for letter in "çğıİşĞŞ":
        (segment,) = encode_text(f"Bakiye {letter}")
        assert segment.data_coding == DCS_UCS2, letter
        assert segment.short_message == f"Bakiye {letter}".encode("utf-16-be")


def test_gsm7_is_unpacked_septets_with_escapes() -> None:
    (segment,) = encode_text("@A€[")
    assert segment.short_message == bytes([0x00, 0x41, 0x1B, 0x65, 0x1B, 0x3C])
    assert decode_gsm7(segment.short_message) == "@A€["


def test_the_whole_default_alphabet_and_extension_round_trip() -> None:
    text = GSM_BASIC + GSM_EXTENSION
    septets = gsm7_septets(text)
    assert septets is not None and len(septets) == 127 + 2 * len(GSM_EXTENSION)
    assert decode_gsm7(bytes(septets)) == text


def test_gsm7_decoding_never_fails_on_odd_input() -> None:
    assert decode_gsm7(b"\x1b") == ""  # a lone trailing escape
    assert decode_gsm7(b"\x1b\x41") == "A"  # unknown extension: the basic character
    assert decode_gsm7(bytes([0xC1])) == "A"  # the 8th bit is not ours


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("ş" * 70, 1),
        ("ş" * 71, 2),
        ("ş" * 134, 2),
        ("ş" * 135, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
    ],
)
def test_part_limits(text: str, parts: int) -> None:
    assert len(encode_text(text)) == parts


def test_an_escape_pair_is_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the € would straddle septets 153 and 154
    first, second = encode_text(text, reference=9)
    assert first.short_message[6:] == b"a" * 152
    assert second.short_message[6:] == b"\x1b\x65" + b"b" * 10
    assert decode_segments([first, second]) == text


def test_a_surrogate_pair_is_never_split() -> None:
    text = "ı" * 66 + "😀" + "ş" * 5  # the emoji's two units would straddle units 67 and 68
    first, second = encode_text(text, reference=1)
    assert len(first.short_message[6:]) == 66 * 2
    assert second.short_message[6:] == "😀şşşşş".encode("utf-16-be")
    assert decode_segments([first, second]) == text


def test_too_long_to_reassemble_is_refused() -> None:
    with pytest.raises(MessageTooLong):
        encode_text("a" * (GSM7_PART * 255 + 1))


texts = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(list("çğıİşöüÇĞŞÖÜ€[]^{}😀🇹🇷 ")),
        st.sampled_from(list(GSM_BASIC)),
    ),
    max_size=700,
)


@PROPS
@given(texts, st.integers(0, 255))
def test_encode_then_decode_gives_the_text_back(text: str, reference: int) -> None:
    segments = encode_text(text, reference)
    assert decode_segments(segments) == text
    assert all(s.short_message[3] == reference for s in segments if len(segments) > 1)


@PROPS
@given(texts)
def test_parts_stay_within_their_limits(text: str) -> None:
    segments = encode_text(text)
    coding = segments[0].data_coding
    assert all(s.data_coding == coding for s in segments)
    assert coding == (DCS_GSM7 if gsm7_septets(text) is not None else DCS_UCS2)
    for segment in segments:
        payload = segment.short_message[6:] if len(segments) > 1 else segment.short_message
        if coding == DCS_GSM7:
            assert len(payload) <= (GSM7_PART if len(segments) > 1 else 160)
            assert not payload.endswith(b"\x1b") or segment is segments[-1]
        else:
            assert len(payload) <= 2 * (UCS2_PART if len(segments) > 1 else 70)
            assert len(payload) % 2 == 0
            assert not 0xD8 <= payload[-2] <= 0xDB  # no part ends inside a surrogate pair
        assert len(segment.short_message) <= 140 or coding == DCS_GSM7  # one TP-UD (GSM7 unpacked: 159)


@PROPS
@given(texts, st.integers(0, 255), st.randoms(use_true_random=False))
def test_reassembly_in_any_order_with_repeats(text: str, reference: int, random: object) -> None:
    import random as _r

    assert isinstance(random, _r.Random)
    segments = encode_text(text, reference)
    parts = [
        parse_incoming(
            ShortMessage(
                "905321234567", "5555", s.short_message, esm_class=s.esm_class, data_coding=s.data_coding
            )
        )
        for s in segments
    ]
    order = parts + random.sample(parts, k=min(2, len(parts)))  # SMSCs redeliver
    random.shuffle(order)
    reassembler = Reassembler()
    results = [r for p in order if (r := reassembler.add("905321234567", "5555", p)) is not None]
    assert results[0] == text
    assert reassembler.pending <= 1  # at most a repeat that began a new round


def test_parse_incoming_reads_udh_sar_and_message_payload() -> None:
    udh = ShortMessage("9053", "5555", b"\x05\x00\x03\x07\x02\x01KA", esm_class=0x40)
    assert parse_incoming(udh) == Incoming(b"KA", 0, Concat(7, 2, 1))
    udh16 = ShortMessage("9053", "5555", b"\x06\x08\x04\x01\x02\x02\x02LAN", esm_class=0x40)
    assert parse_incoming(udh16).concat == Concat(0x0102, 2, 2)
    sar = ShortMessage(
        "9053",
        "5555",
        "kal".encode("utf-16-be"),
        data_coding=8,
        tlvs=(
            (Tag.SAR_MSG_REF_NUM, b"\x00\x05"),
            (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
            (Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
        ),
    )
    assert parse_incoming(sar).concat == Concat(5, 2, 1) and parse_incoming(sar).text == "kal"
    payload = ShortMessage("9053", "5555", b"", tlvs=((Tag.MESSAGE_PAYLOAD, b"KALAN"),))
    assert parse_incoming(payload).text == "KALAN"


def test_a_broken_udh_reads_as_text_and_loses_nothing() -> None:
    too_long = ShortMessage("9053", "5555", b"\x09KALAN", esm_class=0x40)
    assert parse_incoming(too_long).payload == b"\x09KALAN"
    out_of_range = ShortMessage("9053", "5555", b"\x05\x00\x03\x01\x02\x05KALAN", esm_class=0x40)
    assert parse_incoming(out_of_range) == Incoming(b"KALAN", 0, None)


def test_incomplete_messages_are_given_up_after_the_timeout() -> None:
    clock = FakeClock()
    reassembler = Reassembler(timeout=60, clock=clock)
    first, second = encode_text("ş" * 100, reference=3)
    p1 = parse_incoming(ShortMessage("a", "5555", first.short_message, esm_class=0x40, data_coding=8))
    p2 = parse_incoming(ShortMessage("a", "5555", second.short_message, esm_class=0x40, data_coding=8))
    assert reassembler.add("a", "5555", p1) is None and reassembler.pending == 1
    clock.advance(61)
    other = parse_incoming(ShortMessage("b", "5555", b"KALAN"))
    assert reassembler.add("b", "5555", other) == "KALAN"
    assert reassembler.add("a", "5555", p2) is None  # its first part is gone
    assert reassembler.pending == 1


def test_parts_from_different_senders_do_not_mix() -> None:
    reassembler = Reassembler()
    a1, a2 = encode_text("x" * 200, reference=1)
    b1, b2 = encode_text("y" * 200, reference=1)

    def inc(s: Segment) -> Incoming:
        return parse_incoming(
            ShortMessage("?", "5555", s.short_message, esm_class=0x40, data_coding=s.data_coding)
        )

    assert reassembler.add("A", "5555", inc(a1)) is None
    assert reassembler.add("B", "5555", inc(b2)) is None
    assert reassembler.add("A", "5555", inc(a2)) == "x" * 200
    assert reassembler.add("B", "5555", inc(b1)) == "y" * 200


def test_other_data_codings_decode() -> None:
    assert decode_text(b"KALAN", 1) == "KALAN"
    assert decode_text("Kalan ü".encode("latin-1"), 3) == "Kalan ü"
    assert decode_text(b"KALAN", 0xF0) == "KALAN"
    assert decode_text("şğ".encode("utf-16-be"), 0x08) == "şğ"
    assert decode_text(b"\xd8\x00", 8) == "\ufffd"  # a lone surrogate does not raise
