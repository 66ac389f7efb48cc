"""SMS text on the wire: GSM 03.38 7-bit where the text fits it, else UCS-2; long texts split with a
concatenation header; incoming parts decoded and put back together.

SMPP carries GSM 7-bit *unpacked* (one septet per octet, data_coding 0); packing to the air
interface is the SMSC's job. The limits are those of one 140-octet TP-UD: 160 septets or 70 UCS-2
code units alone, 153 / 67 after the 6-octet UDH of a concatenated part. Turkish ç ğ ı İ ş are not
in the default alphabet (the national shift tables are not used here: many handsets and SMSCs
do not support them), so one of them sends the whole message in UCS-2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cellcelly.errors import DomainError
from cellcelly.sms.pdu import ESM_UDHI, ShortMessage, Tag

log = logging.getLogger(__name__)

DCS_GSM7 = 0x00
DCS_IA5 = 0x01
DCS_OCTET_UNSPECIFIED = 0x02
DCS_LATIN1 = 0x03
DCS_OCTET = 0x04
DCS_UCS2 = 0x08

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255
ESCAPE = 0x1B
_SAR_TAGS = (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM)

# GSM 03.38 default alphabet, code 0x00..0x7F (0x1B is the escape to the extension table)
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
assert len(_BASIC) == 128
_TO_BASIC = {ch: code for code, ch in enumerate(_BASIC) if code != ESCAPE}
_TO_EXTENSION = {ch: code for code, ch in _EXTENSION.items()}


class MessageTooLong(DomainError):
    """More than 255 parts: no handset could put it back together."""


def gsm7_septets(text: str) -> list[int] | None:
    """The septets of `text` (escape pairs as two), or None if a character is not in GSM 03.38."""
    out: list[int] = []
    for ch in text:
        code = _TO_BASIC.get(ch)
        if code is not None:
            out.append(code)
            continue
        ext = _TO_EXTENSION.get(ch)
        if ext is None:
            return None
        out += (ESCAPE, ext)
    return out


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM 7-bit to text; never fails (unknown escapes read as the basic character)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        code = data[i] & 0x7F
        if code == ESCAPE:
            if i + 1 >= len(data):
                break  # a lone escape at the end says nothing
            nxt = data[i + 1] & 0x7F
            # 3GPP TS 23.038: an unknown extension shows the default-table character instead
            out.append(_EXTENSION.get(nxt, " " if nxt == ESCAPE else _BASIC[nxt]))
            i += 2
            continue
        out.append(_BASIC[code])
        i += 1
    return "".join(out)


def decode_ucs2(data: bytes) -> str:
    """UCS-2 (and its UTF-16 superset: handsets send emoji as surrogate pairs), big-endian."""
    return data.decode("utf-16-be", errors="replace")


def decode_text(data: bytes, data_coding: int) -> str:
    """short_message octets (without UDH) in the SMPP data_coding they came with."""
    if data_coding == DCS_UCS2:
        return decode_ucs2(data)
    if data_coding == DCS_GSM7:
        return decode_gsm7(data)
    if data_coding == DCS_IA5:
        return data.decode("ascii", errors="replace")
    if data_coding & 0xF0 == 0xF0:  # data coding / message class group: bit 2 says 8-bit data
        return data.decode("latin-1") if data_coding & 0x04 else decode_gsm7(data)
    if data_coding & 0xC0 == 0x00 and data_coding & 0x0C == 0x08:  # general group, UCS-2 alphabet
        return decode_ucs2(data)
    # Latin-1, octet data and the rest: latin-1 never fails and keeps every octet
    return data.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Segment:
    """One submit_sm worth of text: short_message (UDH included) with its data_coding and esm_class."""

    short_message: bytes
    data_coding: int
    esm_class: int


def _udh(reference: int, total: int, seq: int) -> bytes:
    # IEI 0x00: concatenated short message, 8-bit reference number
    return bytes((0x05, 0x00, 0x03, reference & 0xFF, total, seq))


def _chunks_gsm7(septets: list[int]) -> list[list[int]]:
    chunks, i = [], 0
    while i < len(septets):
        end = min(i + GSM7_PART, len(septets))
        # our encoder emits 0x1B only as the first half of an escape pair: never split one
        if end < len(septets) and septets[end - 1] == ESCAPE:
            end -= 1
        chunks.append(septets[i:end])
        i = end
    return chunks


def _chunks_ucs2(units: bytes) -> list[bytes]:
    chunks, i, step = [], 0, UCS2_PART * 2
    while i < len(units):
        end = min(i + step, len(units))
        if end < len(units) and 0xD8 <= units[end - 2] <= 0xDB:
            end -= 2  # never split a surrogate pair
        chunks.append(units[i:end])
        i = end
    return chunks


def encode_text(text: str, reference: int = 0) -> list[Segment]:
    """`text` as one segment, or as concatenated parts sharing the 8-bit `reference`."""
    septets = gsm7_septets(text)
    if septets is not None:
        if len(septets) <= GSM7_SINGLE:
            return [Segment(bytes(septets), DCS_GSM7, 0)]
        parts: list[bytes] = [bytes(chunk) for chunk in _chunks_gsm7(septets)]
        coding = DCS_GSM7
    else:
        units = text.encode("utf-16-be", errors="surrogatepass")
        if len(units) <= UCS2_SINGLE * 2:
            return [Segment(units, DCS_UCS2, 0)]
        parts = _chunks_ucs2(units)
        coding = DCS_UCS2
    if len(parts) > MAX_PARTS:
        raise MessageTooLong(f"{len(parts)} parts (at most {MAX_PARTS})")
    total = len(parts)
    return [Segment(_udh(reference, total, n) + part, coding, ESM_UDHI) for n, part in enumerate(parts, 1)]


def part_count(text: str) -> int:
    return len(encode_text(text))


# --- incoming ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Concat:
    reference: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """One deliver_sm's text payload: raw octets without UDH, how to decode them, which part it is."""

    payload: bytes
    data_coding: int
    concat: Concat | None

    @property
    def text(self) -> str:
        return decode_text(self.payload, self.data_coding)


def _parse_udh(data: bytes) -> tuple[bytes, Concat | None]:
    """(payload, concatenation info) of a short_message that starts with a UDH; a bad UDH reads as text."""
    if not data:
        return data, None
    udhl = data[0]
    if 1 + udhl > len(data):
        log.warning("UDH longer than the message: read as text", extra={"udhl": udhl, "octets": len(data)})
        return data, None
    header, payload = data[1 : 1 + udhl], data[1 + udhl :]
    concat = None
    i = 0
    while i + 2 <= len(header):
        iei, length = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + length]
        if len(value) != length:
            break
        if iei == 0x00 and length == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            concat = Concat((value[0] << 8) | value[1], value[2], value[3])
        i += 2 + length
    if concat is not None and not 1 <= concat.seq <= concat.total:
        log.warning("concatenation header out of range: part read alone", extra={"udh": header.hex()})
        concat = None
    return payload, concat


def parse_incoming(sm: ShortMessage) -> Incoming:
    """The text part of a deliver_sm: short_message or message_payload, UDH or SAR TLVs."""
    data = sm.short_message
    if not data:
        data = sm.tlv(Tag.MESSAGE_PAYLOAD) or b""
    concat: Concat | None = None
    if sm.esm_class & ESM_UDHI:
        data, concat = _parse_udh(data)
    else:
        ref, total, seq = (sm.tlv(tag) for tag in _SAR_TAGS)
        if ref and total and seq and len(total) == 1 and len(seq) == 1 and 1 <= seq[0] <= total[0]:
            concat = Concat(int.from_bytes(ref, "big"), total[0], seq[0])
    if concat is not None and concat.total == 1:
        concat = None
    return Incoming(data, sm.data_coding, concat)


class Reassembler:
    """Puts concatenated parts back together; incomplete messages are given up after `timeout`.

    Parts are joined as octets and decoded once, so a surrogate pair or escape split by another
    sender's encoder still reads right. Keyed by sender, recipient and reference.
    """

    def __init__(
        self, timeout: float = 300.0, max_pending: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout, self.max_pending, self.clock = timeout, max_pending, clock
        self._pending: dict[tuple[str, str, int, int], tuple[float, int, dict[int, bytes]]] = {}

    def add(self, source: str, destination: str, part: Incoming) -> str | None:
        """The whole text once every part is in; None while parts are missing."""
        if part.concat is None:
            return part.text
        self._expire()
        c = part.concat
        key = (source, destination, c.reference, c.total)
        started, coding, parts = self._pending.get(key, (self.clock(), part.data_coding, {}))
        parts[c.seq] = part.payload  # a redelivered part replaces itself
        if len(parts) < c.total:
            self._pending[key] = (started, coding, parts)
            if len(self._pending) > self.max_pending:
                oldest = min(self._pending, key=lambda k: self._pending[k][0])
                log.warning(
                    "too many incomplete messages: the oldest is dropped", extra={"source": oldest[0]}
                )
                del self._pending[oldest]
            return None
        self._pending.pop(key, None)
        return decode_text(b"".join(parts[n] for n in range(1, c.total + 1)), coding)

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, (started, _, _) in self._pending.items() if now - started > self.timeout]:
            _, _, parts = self._pending.pop(key)
            log.warning(
                "incomplete concatenated message given up",
                extra={"source": key[0], "reference": key[2], "parts": f"{len(parts)}/{key[3]}"},
            )

    @property
    def pending(self) -> int:
        return len(self._pending)
