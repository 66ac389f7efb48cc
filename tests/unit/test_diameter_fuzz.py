"""Property tests of the Diameter codec: whatever arrives, `decode` returns a Message or raises
DecodeError (never anything else); what we encode decodes to the same thing; and a corrupted
message whose length field is intact is refused with its header, so the answer can carry the
request's hop-by-hop and end-to-end identifiers."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cellcelly.diameter.codec import (
    _FIXED,
    DICTIONARY,
    MAX_DEPTH,
    Avp,
    DecodeError,
    Message,
    Type,
    decode,
)
from cellcelly.diameter.constants import (
    AVP_V,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    Code,
    Code3gpp,
    Result,
)
from cellcelly_dev.bench_codec import sample_ccr_update

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

U32 = st.integers(0, 2**32 - 1)


def _try_decode(raw: bytes) -> Message | DecodeError:
    """decode(raw), or the DecodeError it raised; any other exception fails the test."""
    try:
        msg = decode(raw)
    except DecodeError as error:
        assert isinstance(error.result, Result)
        assert error.result in (
            Result.UNSUPPORTED_VERSION,
            Result.INVALID_MESSAGE_LENGTH,
            Result.INVALID_AVP_LENGTH,
            Result.INVALID_HDR_BITS,
            Result.INVALID_AVP_VALUE,  # Grouped AVPs nested deeper than MAX_DEPTH
        )
        if len(raw) >= 20:
            assert error.header is not None  # a header could be read: the error can be answered
        if error.result is Result.INVALID_AVP_LENGTH:
            assert error.failed is not None  # RFC 6733 7.1.5: 5014 comes with a Failed-AVP
            repr(error.failed)  # loggable
        return error
    # whatever we accept, we re-encode to something we accept again, and that is a fixed point
    again = msg.encode()
    assert decode(again).encode() == again
    repr(msg)
    return msg


# --- (a) random bytes ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _try_decode(raw)


def _header(length: int, flags: int, code: int, hbh: int = 0x01020304) -> bytes:
    return struct.pack("!IIIII", (1 << 24) | length, (flags << 24) | code, 4, hbh, 0x05060708)


@FUZZ
@given(
    body=st.binary(max_size=400),
    flags=st.sampled_from([FLAG_R, FLAG_R | FLAG_P, 0, FLAG_P | FLAG_E]),
    code=st.sampled_from([257, 272, 280, 282]),
)
def test_random_avps_behind_a_valid_header(body: bytes, flags: int, code: int) -> None:
    """A correct header, so that the fuzzing reaches the AVPs."""
    body += b"\x00" * (-len(body) % 4)
    raw = _header(20 + len(body), flags, code) + body
    got = _try_decode(raw)
    if isinstance(got, DecodeError):
        assert got.result is Result.INVALID_AVP_LENGTH
        assert got.header is not None and got.header.hop_by_hop == 0x01020304


@st.composite
def _avp_soup(draw: st.DrawFn, depth: int = 2) -> bytes:
    """AVP-shaped bytes: plausible codes (dictionary ones often), flags and lengths, random data."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        code, vendor = draw(
            st.sampled_from(sorted(DICTIONARY)) | st.tuples(U32, st.sampled_from([0, VENDOR_3GPP]))
        )
        flags = draw(st.integers(0, 255))
        data = draw(st.binary(max_size=40))
        if depth and draw(st.booleans()):  # a grouped AVP's children: more AVP-shaped bytes
            data = draw(st.binary(max_size=8)) if draw(st.booleans()) else draw(_avp_soup(depth - 1))
        header = 12 if flags & AVP_V else 8
        length = draw(st.sampled_from([header + len(data), header + len(data) + 4, 0, 7, 11, len(data)]))
        head = struct.pack("!II", code, (flags << 24) | (length & 0xFFFFFF))
        if flags & AVP_V:
            head += struct.pack("!I", vendor)
        parts.append(head + data + b"\x00" * (-len(data) % 4))
    return b"".join(parts)


@FUZZ
@given(_avp_soup())
def test_avp_shaped_bytes(body: bytes) -> None:
    body += b"\x00" * (-len(body) % 4)
    raw = _header(20 + len(body), FLAG_R | FLAG_P, 272) + body
    got = _try_decode(raw)
    if isinstance(got, DecodeError):
        assert got.result is Result.INVALID_AVP_LENGTH and got.header is not None


# --- (b) valid messages round trip --------------------------------------------------------------

_LEAVES = sorted(key for key, (_, kind) in DICTIONARY.items() if kind is not Type.GROUPED)
_GROUPS = sorted(key for key, (_, kind) in DICTIONARY.items() if kind is Type.GROUPED)
_AVP_FLAGS = st.integers(0, 255)  # V follows the vendor; M, P and the reserved bits are kept as they are


@st.composite
def _dictionary_leaf(draw: st.DrawFn) -> Avp:
    code, vendor = draw(st.sampled_from(_LEAVES))
    kind = DICTIONARY[(code, vendor)][1]
    if kind in _FIXED:
        data = draw(st.binary(min_size=_FIXED[kind], max_size=_FIXED[kind]))
    elif kind is Type.ADDRESS:
        data = draw(st.sampled_from([b"\x00\x01", b"\x00\x02"])) + draw(st.binary(min_size=4, max_size=16))
    else:
        data = draw(st.binary(max_size=24) | st.text(max_size=12).map(lambda s: s.encode()))
    return Avp(code, draw(_AVP_FLAGS), vendor, data)


@st.composite
def _unknown_leaf(draw: st.DrawFn) -> Avp:
    code = draw(U32)
    vendor = draw(st.sampled_from([0, VENDOR_3GPP, 1, 0xFFFFFFFF]) | U32)
    assume((code, vendor) not in DICTIONARY)
    return Avp(code, draw(_AVP_FLAGS), vendor, draw(st.binary(max_size=24)))


def _grouped(children: st.SearchStrategy[list[Avp]]) -> st.SearchStrategy[Avp]:
    return st.builds(
        lambda key, flags, kids: Avp(key[0], flags, key[1], b"", kids),
        st.sampled_from(_GROUPS),
        _AVP_FLAGS,
        children,
    )


AVPS = st.recursive(
    _dictionary_leaf() | _unknown_leaf(),
    lambda inner: _grouped(st.lists(inner, max_size=4)),
    max_leaves=16,
)

MESSAGES = st.builds(
    Message,
    code=st.integers(0, 2**24 - 1),
    flags=st.sampled_from(
        [0, FLAG_R, FLAG_P, FLAG_T, FLAG_E, FLAG_R | FLAG_P, FLAG_R | FLAG_P | FLAG_T, FLAG_P | FLAG_E]
    ),
    app=U32,
    hop_by_hop=U32,
    end_to_end=U32,
    avps=st.lists(AVPS, max_size=6),
)


def _shape(avp: Avp) -> tuple[Any, ...]:
    kids = None if avp.children is None else tuple(_shape(c) for c in avp.children)
    return (avp.code, avp.vendor, avp.flags, avp.data if avp.children is None else b"", kids)


@FEWER
@given(MESSAGES)
def test_valid_messages_round_trip(msg: Message) -> None:
    raw = msg.encode()
    assert len(raw) % 4 == 0 and int.from_bytes(raw[1:4], "big") == len(raw)
    back = decode(raw)
    assert (back.code, back.flags, back.app, back.hop_by_hop, back.end_to_end) == (
        msg.code,
        msg.flags,
        msg.app,
        msg.hop_by_hop,
        msg.end_to_end,
    )
    assert [_shape(a) for a in back.avps] == [_shape(a) for a in msg.avps]
    assert back.avps == msg.avps
    assert back.encode() == raw
    assert [a.name for a in back.walk()] == [a.name for a in msg.walk()]


# --- (c) truncated and mutated CCRs -------------------------------------------------------------


def _ccrs() -> list[bytes]:
    sms = Avp.grouped(
        Code3gpp.SERVICE_INFORMATION,
        [
            Avp.grouped(
                Code3gpp.SMS_INFORMATION,
                [
                    Avp.grouped(
                        Code3gpp.RECIPIENT_INFO,
                        [
                            Avp.grouped(
                                Code3gpp.RECIPIENT_ADDRESS,
                                [Avp.utf8(Code3gpp.ADDRESS_DATA, "905551112233", vendor=VENDOR_3GPP)],
                                vendor=VENDOR_3GPP,
                            )
                        ],
                        vendor=VENDOR_3GPP,
                    )
                ],
                vendor=VENDOR_3GPP,
            )
        ],
        vendor=VENDOR_3GPP,
    )
    event = sample_ccr_update(number=0)
    event.avps = [*event.avps[:10], sms, Avp.octets(99_999, b"unknown, kept")]
    return [sample_ccr_update().encode(), event.encode()]


CCRS = _ccrs()


def _offsets(avps: list[Avp], start: int = 20) -> Iterator[int]:
    """The offset of every AVP (depth first) in the encoded message."""
    offset = start
    for avp in avps:
        yield offset
        if avp.children is not None:
            yield from _offsets(avp.children, offset + (12 if avp.vendor else 8))
        offset += len(avp.encode())


AVP_OFFSETS = [list(_offsets(decode(raw).avps)) for raw in CCRS]


@FEWER
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_truncated_ccrs(which: int, data: st.DataObject) -> None:
    raw = CCRS[which]
    cut = data.draw(st.integers(0, len(raw) - 1))
    got = _try_decode(raw[:cut])
    assert isinstance(got, DecodeError) and got.result is Result.INVALID_MESSAGE_LENGTH
    assert (got.header is not None) == (cut >= 20)
    # the same cut with the length field telling the truth (as a framer would have it)
    fixed = bytearray(raw[:cut])
    if cut >= 4:
        fixed[1:4] = cut.to_bytes(3, "big")
    got = _try_decode(bytes(fixed))
    if isinstance(got, DecodeError) and cut >= 20:
        assert got.header is not None and got.header.hop_by_hop == decode(raw).hop_by_hop


@FUZZ
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_single_byte_mutations_of_ccrs(which: int, data: st.DataObject) -> None:
    raw = CCRS[which]
    at = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255))
    assume(raw[at] != value)
    mutated = raw[:at] + bytes([value]) + raw[at + 1 :]
    got = _try_decode(mutated)
    if isinstance(got, DecodeError):
        assert got.header is not None
        if not 12 <= at < 20:  # the identifiers are intact: the answer can carry them
            original = decode(raw)
            assert (got.header.hop_by_hop, got.header.end_to_end) == (
                original.hop_by_hop,
                original.end_to_end,
            )
        if at >= 20:  # version, flags and length are intact: only an AVP can be at fault
            assert got.result is Result.INVALID_AVP_LENGTH and got.failed is not None


@FUZZ
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_corrupted_inner_avp_lengths(which: int, data: st.DataObject) -> None:
    """The message length field intact, an AVP's length corrupted: refused with 5014, the header
    (for the answer's identifiers) and the AVP at fault; or, by chance, still a valid message."""
    raw = CCRS[which]
    at = data.draw(st.sampled_from(AVP_OFFSETS[which]))
    length = data.draw(st.integers(0, 0xFFFFFF) | st.integers(0, 64))
    mutated = bytearray(raw)
    mutated[at + 5 : at + 8] = length.to_bytes(3, "big")
    assume(bytes(mutated) != raw)
    got = _try_decode(bytes(mutated))
    original = decode(raw)
    if isinstance(got, DecodeError):
        assert got.result is Result.INVALID_AVP_LENGTH
        assert got.header is not None
        assert (got.header.code, got.header.flags, got.header.hop_by_hop, got.header.end_to_end) == (
            original.code,
            original.flags,
            original.hop_by_hop,
            original.end_to_end,
        )
        assert got.failed is not None
        answer = got.header.answer(
            [Avp.u32(Code.RESULT_CODE, got.result), Avp.grouped(Code.FAILED_AVP, [got.failed])]
        )
        assert decode(answer.encode()).hop_by_hop == original.hop_by_hop


@FEWER
@given(which=st.sampled_from([0, 1]), data=st.data())
def test_several_mutations_of_ccrs(which: int, data: st.DataObject) -> None:
    mutated = bytearray(CCRS[which])
    for _ in range(data.draw(st.integers(2, 8))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    _try_decode(bytes(mutated))


# --- (d) nesting ---------------------------------------------------------------------------------


def _nested(depth: int, code: int = Code.PROXY_INFO) -> bytes:
    """A CCR-shaped request whose one AVP is `depth` Grouped AVPs inside each other, a leaf at the
    bottom: built as bytes, since building it as Avp objects would recurse as deep to encode."""
    avp = Avp.utf8(Code.PROXY_HOST, "relay.test").encode()
    for _ in range(depth):
        avp = struct.pack("!II", code, (0x40 << 24) | (8 + len(avp))) + avp
    return _header(20 + len(avp), FLAG_R | FLAG_P, 272) + avp


@FEWER
@given(depth=st.integers(0, 40) | st.sampled_from([1000, 5000]))
def test_grouped_nesting_has_a_limit(depth: int) -> None:
    """Up to MAX_DEPTH levels decode; deeper is refused with 5004 and the Grouped AVP at the limit in
    Failed-AVP (1000 levels raised RecursionError, which tore the peer connection down)."""
    got = _try_decode(_nested(depth))
    if depth <= MAX_DEPTH:
        assert isinstance(got, Message)
        return
    assert isinstance(got, DecodeError) and got.result is Result.INVALID_AVP_VALUE
    assert got.header is not None and got.header.hop_by_hop == 0x01020304
    assert got.failed is not None and got.failed.code == Code.PROXY_INFO and got.failed.children == []


def test_nesting_inside_a_failed_avp_is_kept_raw() -> None:
    """An answer's Failed-AVP reports what a peer found at fault: kept as bytes, never refused."""
    raw = bytearray(_nested(1000, code=Code.FAILED_AVP))
    raw[4] = FLAG_P  # an answer
    msg = decode(bytes(raw))
    assert msg.avps[0].code == Code.FAILED_AVP and msg.encode() == bytes(raw)
