"""SMPP 3.4 PDUs: the few an ESME needs, encoded and decoded by us (no SMPP library).

A PDU is a 16-octet header (command_length, command_id, command_status, sequence_number, all
big-endian 32-bit) and a body of C-octet strings, integers, an octet string and TLVs. Decoding
never trusts a length: a body that does not fit its declared command_length raises `PduError`
with the status the peer should get back (in a generic_nack), so the session can go on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from cellcelly.errors import ProtocolError

HEADER = struct.Struct(">IIII")
HEADER_SIZE = HEADER.size
# The spec sets no maximum; 64 KiB is far above any real PDU (short_message ≤ 254, payload TLV ≤ 64K)
MAX_PDU = 70_000
MAX_SEQUENCE = 0x7FFFFFFF
RESPONSE = 0x80000000


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103
    ALERT_NOTIFICATION = 0x00000102


class Status(IntEnum):
    """command_status values of SMPP 3.4 (section 5.1.3)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08X}"


def command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08X}"


class Ton(IntEnum):
    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    UNKNOWN = 0
    ISDN = 1  # E.164


class Tag(IntEnum):
    """The TLVs we read or write (SMPP 3.4 section 5.3.2)."""

    SC_INTERFACE_VERSION = 0x0210
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    MESSAGE_PAYLOAD = 0x0424
    RECEIPTED_MESSAGE_ID = 0x001E
    MESSAGE_STATE = 0x0427


ESM_UDHI = 0x40  # esm_class: the short_message starts with a user data header
ESM_TYPE_MASK = 0x3C  # esm_class bits 5-2: message type (0 = normal, 0x04 = SMSC delivery receipt)
ESM_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE_NOTIFICATION = 0x20

# Maximum lengths of C-octet strings, NUL included (SMPP 3.4 section 4)
SYSTEM_ID_MAX = 16
PASSWORD_MAX = 9
SYSTEM_TYPE_MAX = 13
SERVICE_TYPE_MAX = 6
ADDRESS_MAX = 21  # source_addr / destination_addr of submit_sm and deliver_sm
ADDRESS_RANGE_MAX = 41
TIME_MAX = 17
MESSAGE_ID_MAX = 65
SHORT_MESSAGE_MAX = 254


class PduError(ProtocolError, ValueError):
    """A PDU we cannot read; `status` is what the peer gets back (in a generic_nack)."""

    def __init__(self, message: str, status: Status, command_id: int = 0, sequence: int = 0) -> None:
        super().__init__(message)
        self.status, self.command_id, self.sequence = status, command_id, sequence
        self.smpp_status = status


class FramingError(PduError):
    """The command_length itself is impossible: the stream cannot be followed any further."""


@dataclass(frozen=True, slots=True)
class Bind:
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindResp:
    system_id: str
    tlvs: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """The body shared by submit_sm and deliver_sm."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    data_coding: int = 0
    service_type: str = ""
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[tuple[int, bytes], ...] = ()

    def tlv(self, tag: int) -> bytes | None:
        return next((value for t, value in self.tlvs if t == tag), None)


@dataclass(frozen=True, slots=True)
class MessageIdResp:
    """submit_sm_resp and deliver_sm_resp bodies (an error response may have no body at all)."""

    message_id: str = ""


Body = Bind | BindResp | ShortMessage | MessageIdResp | None


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    sequence: int
    status: int = 0
    body: Body = field(default=None)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE)

    @property
    def name(self) -> str:
        return command_name(self.command_id)


_BINDS = {CommandId.BIND_TRANSCEIVER, CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER}
_BIND_RESPS = {c | RESPONSE for c in _BINDS}
_EMPTY = {
    CommandId.GENERIC_NACK,
    CommandId.UNBIND,
    CommandId.UNBIND_RESP,
    CommandId.ENQUIRE_LINK,
    CommandId.ENQUIRE_LINK_RESP,
}
_MESSAGES = {CommandId.SUBMIT_SM, CommandId.DELIVER_SM}
_MESSAGE_RESPS = {CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP}
KNOWN = {int(c) for c in CommandId}


# --- encoding ------------------------------------------------------------------------------------


def _cstring(value: str, limit: int, what: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) >= limit or b"\x00" in raw:
        raise ValueError(f"{what} must be at most {limit - 1} ASCII characters without NUL")
    return raw + b"\x00"


def _tlvs(tlvs: tuple[tuple[int, bytes], ...]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs)


def encode_body(command_id: int, body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, Bind):
        return (
            _cstring(body.system_id, SYSTEM_ID_MAX, "system_id")
            + _cstring(body.password, PASSWORD_MAX, "password")
            + _cstring(body.system_type, SYSTEM_TYPE_MAX, "system_type")
            + bytes((body.interface_version, body.addr_ton, body.addr_npi))
            + _cstring(body.address_range, ADDRESS_RANGE_MAX, "address_range")
        )
    if isinstance(body, BindResp):
        return _cstring(body.system_id, SYSTEM_ID_MAX, "system_id") + _tlvs(body.tlvs)
    if isinstance(body, MessageIdResp):
        return _cstring(body.message_id, MESSAGE_ID_MAX, "message_id")
    if len(body.short_message) > SHORT_MESSAGE_MAX:
        raise ValueError(f"short_message is at most {SHORT_MESSAGE_MAX} octets (use message_payload)")
    return b"".join(
        (
            _cstring(body.service_type, SERVICE_TYPE_MAX, "service_type"),
            bytes((body.source_addr_ton, body.source_addr_npi)),
            _cstring(body.source_addr, ADDRESS_MAX, "source_addr"),
            bytes((body.dest_addr_ton, body.dest_addr_npi)),
            _cstring(body.destination_addr, ADDRESS_MAX, "destination_addr"),
            bytes((body.esm_class, body.protocol_id, body.priority_flag)),
            _cstring(body.schedule_delivery_time, TIME_MAX, "schedule_delivery_time"),
            _cstring(body.validity_period, TIME_MAX, "validity_period"),
            bytes(
                (
                    body.registered_delivery,
                    body.replace_if_present_flag,
                    body.data_coding,
                    body.sm_default_msg_id,
                    len(body.short_message),
                )
            ),
            body.short_message,
            _tlvs(body.tlvs),
        )
    )


def encode(pdu: Pdu) -> bytes:
    body = encode_body(pdu.command_id, pdu.body)
    return HEADER.pack(HEADER_SIZE + len(body), pdu.command_id, pdu.status, pdu.sequence) + body


# --- decoding ------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, command_id: int, sequence: int) -> None:
        self.data, self.pos, self.command_id, self.sequence = data, 0, command_id, sequence

    def fail(self, message: str, status: Status = Status.ESME_RINVCMDLEN) -> PduError:
        return PduError(f"{command_name(self.command_id)}: {message}", status, self.command_id, self.sequence)

    def octet(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise self.fail(f"body ends before {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def cstring(self, limit: int, what: str) -> str:
        end = self.data.find(b"\x00", self.pos, self.pos + limit)
        if end < 0:
            if len(self.data) - self.pos < limit:
                raise self.fail(f"body ends inside {what}")
            raise self.fail(f"{what} longer than {limit - 1} octets", Status.ESME_RINVPARLEN)
        raw = self.data[self.pos : end]
        self.pos = end + 1
        return raw.decode("latin-1")  # addresses and ids are ASCII; latin-1 never fails

    def octets(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"body ends inside {what}", Status.ESME_RINVMSGLEN)
        raw = self.data[self.pos : self.pos + count]
        self.pos += count
        return raw

    def tlvs(self) -> tuple[tuple[int, bytes], ...]:
        found = []
        while self.pos < len(self.data):
            if len(self.data) - self.pos < 4:
                raise self.fail("a truncated TLV header", Status.ESME_RINVOPTPARSTREAM)
            tag, length = struct.unpack_from(">HH", self.data, self.pos)
            self.pos += 4
            if self.pos + length > len(self.data):
                raise self.fail(f"TLV 0x{tag:04X} longer than the PDU", Status.ESME_RINVOPTPARSTREAM)
            found.append((tag, self.data[self.pos : self.pos + length]))
            self.pos += length
        return tuple(found)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} octets after the last field")


def parse_header(head: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence); FramingError if the length is impossible."""
    length, command_id, status, sequence = HEADER.unpack(head)
    if length < HEADER_SIZE or length > MAX_PDU:
        raise FramingError(
            f"command_length {length} outside {HEADER_SIZE}..{MAX_PDU}",
            Status.ESME_RINVCMDLEN,
            command_id,
            sequence,
        )
    return length, command_id, status, sequence


def decode(frame: bytes) -> Pdu:
    """One whole PDU (header included) to a `Pdu`; PduError for anything we cannot read."""
    if len(frame) < HEADER_SIZE:
        raise FramingError(f"{len(frame)} octets is shorter than a PDU header", Status.ESME_RINVCMDLEN)
    length, command_id, status, sequence = parse_header(frame[:HEADER_SIZE])
    if length != len(frame):
        raise FramingError(
            f"command_length {length} but {len(frame)} octets", Status.ESME_RINVCMDLEN, command_id, sequence
        )
    if command_id not in KNOWN:
        raise PduError(f"unknown command_id 0x{command_id:08X}", Status.ESME_RINVCMDID, command_id, sequence)
    r = _Reader(frame[HEADER_SIZE:], command_id, sequence)
    body: Body = None
    if command_id in _EMPTY or not r.data and (command_id & RESPONSE):
        # an error response may come without its body (SMPP 3.4 section 3.3)
        r.done()
    elif command_id in _BINDS:
        body = Bind(
            r.cstring(SYSTEM_ID_MAX, "system_id"),
            r.cstring(PASSWORD_MAX, "password"),
            r.cstring(SYSTEM_TYPE_MAX, "system_type"),
            r.octet("interface_version"),
            r.octet("addr_ton"),
            r.octet("addr_npi"),
            r.cstring(ADDRESS_RANGE_MAX, "address_range"),
        )
        r.done()
    elif command_id in _BIND_RESPS:
        body = BindResp(r.cstring(SYSTEM_ID_MAX, "system_id"), r.tlvs())
    elif command_id in _MESSAGE_RESPS:
        body = MessageIdResp(r.cstring(MESSAGE_ID_MAX, "message_id"))
        r.done()
    elif command_id in _MESSAGES:
        body = _short_message(r)
    else:
        # known to SMPP but not spoken by this ESME (outbind, data_sm, alert_notification)
        raise PduError(
            f"{command_name(command_id)} is not supported", Status.ESME_RINVCMDID, command_id, sequence
        )
    return Pdu(command_id, sequence, status, body)


def _short_message(r: _Reader) -> ShortMessage:
    service_type = r.cstring(SERVICE_TYPE_MAX, "service_type")
    source_ton, source_npi = r.octet("source_addr_ton"), r.octet("source_addr_npi")
    source = r.cstring(ADDRESS_MAX, "source_addr")
    dest_ton, dest_npi = r.octet("dest_addr_ton"), r.octet("dest_addr_npi")
    destination = r.cstring(ADDRESS_MAX, "destination_addr")
    esm_class, protocol_id, priority = r.octet("esm_class"), r.octet("protocol_id"), r.octet("priority_flag")
    schedule = r.cstring(TIME_MAX, "schedule_delivery_time")
    validity = r.cstring(TIME_MAX, "validity_period")
    registered, replace = r.octet("registered_delivery"), r.octet("replace_if_present_flag")
    data_coding, default_id = r.octet("data_coding"), r.octet("sm_default_msg_id")
    sm_length = r.octet("sm_length")
    if sm_length > SHORT_MESSAGE_MAX:
        raise r.fail(f"sm_length {sm_length} > {SHORT_MESSAGE_MAX}", Status.ESME_RINVMSGLEN)
    message = r.octets(sm_length, "short_message")
    return ShortMessage(
        source_addr=source,
        destination_addr=destination,
        short_message=message,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        esm_class=esm_class,
        data_coding=data_coding,
        service_type=service_type,
        protocol_id=protocol_id,
        priority_flag=priority,
        schedule_delivery_time=schedule,
        validity_period=validity,
        registered_delivery=registered,
        replace_if_present_flag=replace,
        sm_default_msg_id=default_id,
        tlvs=r.tlvs(),
    )


# --- builders ------------------------------------------------------------------------------------


def response_to(request: Pdu, status: int = Status.ESME_ROK, body: Body = None) -> Pdu:
    return Pdu(request.command_id | RESPONSE, request.sequence, status, body)


def generic_nack(sequence: int, status: int) -> Pdu:
    return Pdu(CommandId.GENERIC_NACK, sequence, status)
