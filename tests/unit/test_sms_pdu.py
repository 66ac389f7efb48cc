"""SMPP 3.4 PDU codec: byte-exact against the spec's layout, round trips, and hostile input refused
with the status the peer should get (never any other exception)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.sms.pdu import (
    Bind,
    BindResp,
    CommandId,
    FramingError,
    MessageIdResp,
    Pdu,
    PduError,
    ShortMessage,
    Status,
    Tag,
    decode,
    encode,
    generic_nack,
    response_to,
)

pytestmark = pytest.mark.unit
FUZZ = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def test_bind_transceiver_is_laid_out_as_the_spec_says() -> None:
    raw = encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, Bind("cellcelly", "Pw1!", "CMT")))
    body = b"cellcelly\x00Pw1!\x00CMT\x00\x34\x00\x00\x00"
    assert raw == struct.pack(">IIII", 16 + len(body), 0x00000009, 0, 1) + body
    assert decode(raw) == Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, Bind("cellcelly", "Pw1!", "CMT"))


def test_submit_sm_is_laid_out_as_the_spec_says() -> None:
    sm = ShortMessage(
        source_addr="5555",
        source_addr_ton=3,
        destination_addr="905321234567",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=0x40,
        data_coding=8,
        short_message=b"\x05\x00\x03\x01\x02\x01\x00A",
    )
    raw = encode(Pdu(CommandId.SUBMIT_SM, 7, 0, sm))
    body = (
        b"\x00"  # service_type
        + b"\x03\x005555\x00"
        + b"\x01\x01905321234567\x00"
        + b"\x40\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x00\x00\x08\x00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
        + b"\x08\x05\x00\x03\x01\x02\x01\x00A"
    )
    assert raw[16:] == body
    assert struct.unpack(">IIII", raw[:16]) == (16 + len(body), 4, 0, 7)
    assert decode(raw).body == sm


@pytest.mark.parametrize(
    "pdu",
    [
        Pdu(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, BindResp("smsc", ((Tag.SC_INTERFACE_VERSION, b"\x34"),))),
        Pdu(CommandId.BIND_TRANSCEIVER_RESP, 1, Status.ESME_RINVPASWD),  # error responses may have no body
        Pdu(CommandId.SUBMIT_SM_RESP, 9, 0, MessageIdResp("abc-123")),
        Pdu(CommandId.DELIVER_SM_RESP, 0x7FFFFFFF, 0, MessageIdResp("")),
        Pdu(CommandId.ENQUIRE_LINK, 3),
        Pdu(CommandId.ENQUIRE_LINK_RESP, 3),
        Pdu(CommandId.UNBIND, 4),
        Pdu(CommandId.UNBIND_RESP, 4),
        generic_nack(5, Status.ESME_RINVCMDID),
        Pdu(
            CommandId.DELIVER_SM,
            6,
            0,
            ShortMessage("905321234567", "5555", b"KALAN", 1, 1, tlvs=((Tag.MESSAGE_PAYLOAD, b"x"),)),
        ),
    ],
)
def test_every_pdu_round_trips(pdu: Pdu) -> None:
    assert decode(encode(pdu)) == pdu


def test_response_keeps_the_sequence_and_sets_the_response_bit() -> None:
    request = Pdu(CommandId.DELIVER_SM, 42, 0, ShortMessage("1", "2"))
    answer = response_to(request, Status.ESME_RSYSERR, MessageIdResp(""))
    assert answer.command_id == 0x80000005 and answer.sequence == 42 and answer.is_response
    assert answer.status == Status.ESME_RSYSERR


def test_unknown_command_id_is_refused_with_rinvcmdid_and_its_sequence() -> None:
    with pytest.raises(PduError) as caught:
        decode(struct.pack(">IIII", 16, 0x00000999, 0, 77))
    assert caught.value.status == Status.ESME_RINVCMDID and caught.value.sequence == 77
    assert not isinstance(caught.value, FramingError)


@pytest.mark.parametrize("length", [0, 8, 15, 1_000_000])
def test_impossible_command_length_is_a_framing_error(length: int) -> None:
    with pytest.raises(FramingError) as caught:
        decode(struct.pack(">IIII", length, 5, 0, 1))
    assert caught.value.status == Status.ESME_RINVCMDLEN


def test_truncated_deliver_sm_is_refused_with_its_sequence() -> None:
    good = encode(Pdu(CommandId.DELIVER_SM, 12, 0, ShortMessage("905321234567", "5555", b"KALAN")))
    body = good[16:-3]  # sm_length says 5, only 2 octets follow
    with pytest.raises(PduError) as caught:
        decode(struct.pack(">IIII", 16 + len(body), 5, 0, 12) + body)
    assert caught.value.sequence == 12 and caught.value.status == Status.ESME_RINVMSGLEN


def test_address_without_terminator_is_refused() -> None:
    body = b"\x00\x01\x01" + b"9" * 30  # source_addr never ends
    with pytest.raises(PduError) as caught:
        decode(struct.pack(">IIII", 16 + len(body), 5, 0, 3) + body)
    assert caught.value.status == Status.ESME_RINVPARLEN


def test_encoder_refuses_fields_too_long_for_smpp() -> None:
    with pytest.raises(ValueError):
        encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, Bind("a" * 16, "pw")))
    with pytest.raises(ValueError):
        encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, Bind("id", "p" * 9)))
    with pytest.raises(ValueError):
        encode(Pdu(CommandId.SUBMIT_SM, 1, 0, ShortMessage("5555", "90532", b"x" * 255)))


addresses = st.text(alphabet="0123456789+", max_size=20)
messages = st.builds(
    ShortMessage,
    source_addr=addresses,
    destination_addr=addresses,
    short_message=st.binary(max_size=254),
    source_addr_ton=st.integers(0, 255),
    source_addr_npi=st.integers(0, 255),
    dest_addr_ton=st.integers(0, 255),
    dest_addr_npi=st.integers(0, 255),
    esm_class=st.integers(0, 255),
    data_coding=st.integers(0, 255),
    service_type=st.text(alphabet="ABCXYZ", max_size=5),
    registered_delivery=st.integers(0, 255),
    tlvs=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=3).map(tuple),
)


@FUZZ
@given(messages, st.integers(1, 0x7FFFFFFF), st.sampled_from([CommandId.SUBMIT_SM, CommandId.DELIVER_SM]))
def test_short_messages_round_trip(sm: ShortMessage, sequence: int, command: CommandId) -> None:
    assert decode(encode(Pdu(command, sequence, 0, sm))) == Pdu(command, sequence, 0, sm)


@FUZZ
@given(st.binary(min_size=0, max_size=300))
def test_random_octets_decode_or_raise_pdu_error(data: bytes) -> None:
    try:
        decode(data)
    except PduError:
        pass


@FUZZ
@given(messages, st.data())
def test_mutated_pdus_decode_or_raise_pdu_error(sm: ShortMessage, data: st.DataObject) -> None:
    raw = bytearray(encode(Pdu(CommandId.DELIVER_SM, 1, 0, sm)))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(16, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(16, len(raw)))
    frame = struct.pack(">I", cut) + bytes(raw[4:cut])  # the length field kept consistent
    try:
        decode(frame)
    except PduError as exc:
        assert exc.sequence == 1  # the nack can name the PDU it refuses
