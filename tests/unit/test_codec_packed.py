"""AVPs packed straight to bytes (`packed_*`) and `EncodedMessage`: the same bytes as `Avp.encode`
and `Message.encode`, and the same refusals, for any value."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.diameter.codec import (
    Avp,
    EncodedMessage,
    Message,
    decode,
    packed_grouped,
    packed_i32,
    packed_u32,
    packed_u64,
    packed_unsigned,
    packed_utf8,
)
from cellcelly.diameter.constants import FLAG_E, FLAG_P, FLAG_R, FLAG_T, Cmd, Code

pytestmark = pytest.mark.unit

codes = st.integers(0, 2**32 - 1)
vendors = st.integers(0, 2**32 - 1)


@given(code=codes, value=st.integers(0, 2**32 - 1), vendor=vendors)
def test_u32(code: int, value: int, vendor: int) -> None:
    assert packed_u32(code, value, vendor) == Avp.u32(code, value, vendor).encode()


@given(code=codes, value=st.integers(-(2**31), 2**31 - 1))
def test_i32(code: int, value: int) -> None:
    assert packed_i32(code, value) == Avp.i32(code, value).encode()


@given(code=codes, value=st.integers(0, 2**64 - 1))
def test_u64(code: int, value: int) -> None:
    assert packed_u64(code, value) == Avp.u64(code, value).encode()


@given(code=codes, value=st.text(max_size=70))
def test_utf8_padded(code: int, value: str) -> None:
    assert packed_utf8(code, value) == Avp.utf8(code, value).encode()


@given(code=codes, inner=st.lists(st.tuples(codes, st.text(max_size=9)), max_size=4))
def test_grouped(code: int, inner: list[tuple[int, str]]) -> None:
    children = [Avp.utf8(c, v) for c, v in inner]
    packed = packed_grouped(code, b"".join(packed_utf8(c, v) for c, v in inner))
    assert packed == Avp.grouped(code, children).encode()


@pytest.mark.parametrize(
    ("pack", "value"),
    [
        (packed_u32, 2**32),
        (packed_u32, -1),
        (packed_i32, 2**31),
        (packed_i32, -(2**31) - 1),
        (packed_u64, 2**64),
        (packed_u64, -1),
    ],
)
def test_what_does_not_fit_is_refused_as_by_avp(pack: object, value: int) -> None:
    build = {packed_u32: Avp.u32, packed_i32: Avp.i32, packed_u64: Avp.u64}[pack]  # type: ignore[index]
    with pytest.raises(struct.error):
        pack(1, value)  # type: ignore[operator]
    with pytest.raises(struct.error):
        build(1, value)


def _request(proxies: int) -> Message:
    proxy = Avp.grouped(
        Code.PROXY_INFO,
        [Avp.utf8(Code.PROXY_HOST, "relay.test"), Avp.octets(Code.PROXY_STATE, b"\x01\x02\x03")],
    )
    avps = [Avp.utf8(Code.SESSION_ID, "s;1"), *([proxy] * proxies), Avp.u32(Code.CC_REQUEST_NUMBER, 3)]
    return Message(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P | FLAG_T, 4, 77, 88, avps)


@given(proxies=st.integers(0, 3), later=st.lists(st.integers(0, 2**32 - 1), max_size=3))
def test_an_encoded_answer_is_the_answer_s_bytes(proxies: int, later: list[int]) -> None:
    request = _request(proxies)
    first = [Avp.utf8(Code.SESSION_ID, "s;1"), Avp.u32(Code.RESULT_CODE, 2001)]
    expected = request.answer(first)
    got = request.encoded_answer(b"".join(a.encode() for a in first))
    assert len(got.avps) == proxies  # the request's Proxy-Info, after the packed AVPs
    for value in later:  # AVPs added afterwards go after them, as on an answer of Avp objects
        expected.avps.append(Avp.u32(Code.VALIDITY_TIME, value))
        got.avps.append(Avp.u32(Code.VALIDITY_TIME, value))
    assert got.encode() == expected.encode()
    assert decode(got.encode()).flags == FLAG_P  # P kept; R, T (and E) cleared
    assert not got.flags & (FLAG_R | FLAG_T | FLAG_E)


def test_an_encoded_message_alone_is_its_head() -> None:
    head = packed_utf8(Code.SESSION_ID, "s;9") + packed_u32(Code.RESULT_CODE, 2001)
    msg = EncodedMessage(Cmd.CREDIT_CONTROL, 0, 4, 5, 6, head)
    back = decode(msg.encode())
    assert (back.hop_by_hop, back.end_to_end, back.session_id, back.result_code) == (5, 6, "s;9", 2001)
    # read in place too (tests, logs): the head's AVPs, then the ones after it
    msg.avps.append(Avp.u32(Code.RESULT_CODE, 5030))
    assert (msg.session_id, msg.result_code) == ("s;9", 2001)
    assert [a.as_u32() for a in msg.find_all(Code.RESULT_CODE)] == [2001, 5030]
    assert [a.code for a in msg.walk()] == [Code.SESSION_ID, Code.RESULT_CODE, Code.RESULT_CODE]
    assert msg.find(Code.ORIGIN_HOST) is None
    assert "'s;9'" in repr(msg) and "5030" in repr(msg)


@given(value=st.integers(0, 2**32 - 1), wide=st.integers(2**32, 2**64 - 1))
def test_unsigned_by_the_dictionary_s_size(value: int, wide: int) -> None:
    assert packed_unsigned(Code.CC_TIME, value) == Avp.u32(Code.CC_TIME, value).encode()
    for code in (Code.CC_TOTAL_OCTETS, Code.CC_SERVICE_SPECIFIC_UNITS):
        assert packed_unsigned(code, wide) == Avp.u64(code, wide).encode()
    with pytest.raises(struct.error):
        packed_unsigned(Code.CC_TIME, wide)  # CC-Time is Unsigned32: not sent
