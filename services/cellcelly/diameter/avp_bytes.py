"""Reading AVPs straight from a message's bytes, without `Avp` objects: what the hot readers share.

Why: a message decoded into `Avp` objects (`codec.decode`) makes one object an AVP, which the
collector walks and frees; on two cores shared by the gateway, the OCS and the traffic generator
that was a third of the gateway's CPU and a fifth of the generator's (`perf`, 2026-12-07). A
reader (`dgw/ccr_reader.py`, `diameter/cca_reader.py`) walks the bytes once with these and makes
only what its caller needs. Each check here is `codec.decode_avps`'s; a reader gives up
(`Unread`) where decoding would raise, or on anything it does not read, and its caller takes the
full path, which answers as ever.
"""

from __future__ import annotations

import struct
from typing import Final

from cellcelly.diameter.codec import _FIXED_BY_INT, _GROUPED_INT, MAX_DEPTH, NATIVE
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    AVP_V,
    FLAG_E,
    FLAG_R,
    HEADER_LENGTH,
    VERSION,
    Cmd,
)

_U32: Final = struct.Struct("!I")
_AVP: Final = struct.Struct("!I I")
_HDR: Final = struct.Struct("!I I I I I")
_I32: Final = struct.Struct("!i")
_U64: Final = struct.Struct("!Q")


class Unread(Exception):
    """Not a message this reader reads: the full path decides."""


def credit_control(frame: bytes, request: bool) -> tuple[int, int, int] | None:
    """(flags, hop-by-hop, end-to-end) of a Credit-Control request (or answer) whose header
    `codec.decode` would take, its length the frame's; None for any other frame, or an error
    answer (E bit: the full path reads those)."""
    if len(frame) < HEADER_LENGTH:
        return None
    word0, word1, app, hbh, e2e = _HDR.unpack_from(frame, 0)
    flags = word1 >> 24
    length = word0 & 0xFFFFFF
    if (
        word0 >> 24 != VERSION
        or length != len(frame)
        or length & 3
        or word1 & 0xFFFFFF != Cmd.CREDIT_CONTROL
        or app != APP_CREDIT_CONTROL
        or flags & (0x0F | FLAG_E)
        or bool(flags & FLAG_R) != request
    ):
        return None
    return flags, hbh, e2e


def header(buf: bytes, offset: int) -> tuple[int, int, int]:
    """(code, flags, length) of the AVP at `offset` (compiled, a tuple of ints returned unboxed)."""
    if NATIVE:  # compiled: a byte is a C array read (codec.decode_avps says why)
        code = (buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]
        return code, buf[offset + 4], (buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]
    code, word = _AVP.unpack_from(buf, offset)
    return code, word >> 24, word & 0xFFFFFF


def u32_at(buf: bytes, at: int) -> int:
    if NATIVE:
        return (buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]
    return int(_U32.unpack_from(buf, at)[0])


def i32_at(buf: bytes, at: int) -> int:
    return int(_I32.unpack_from(buf, at)[0])


def u64_at(buf: bytes, at: int) -> int:
    return int(_U64.unpack_from(buf, at)[0])


def end_of(buf: bytes, offset: int) -> int:
    """Where the data of the AVP at `offset` ends (without its padding)."""
    return offset + header(buf, offset)[2]


def vendor_of(buf: bytes, offset: int, flags: int, end: int) -> int:
    """The Vendor-Id of the AVP at `offset` (0 without the V bit); `Unread` where its header does
    not fit before `end`, or names vendor 0 after the V bit (no peer of ours sends that)."""
    if not flags & AVP_V:
        return 0
    if end - offset < 12:
        raise Unread
    vendor = u32_at(buf, offset + 8)
    if vendor == 0:
        raise Unread
    return vendor


def check(buf: bytes, offset: int, end: int, depth: int) -> None:
    """buf[offset:end]'s AVPs, at nesting `depth`, checked as `codec.decode_avps` checks them:
    lengths within their group, fixed sizes, nesting no deeper than `codec.MAX_DEPTH`."""
    grouped, fixed_of = _GROUPED_INT, _FIXED_BY_INT
    while offset < end:
        if end - offset < 8:
            raise Unread
        code, flags, length = header(buf, offset)
        vendor = vendor_of(buf, offset, flags, end)
        size = 12 if vendor else 8
        data_end = offset + length
        if length < size or data_end > end:
            raise Unread
        key = (vendor << 32) | code
        if key in grouped:
            if depth >= MAX_DEPTH:
                raise Unread
            check(buf, offset + size, data_end, depth + 1)
        else:
            fixed = fixed_of.get(key)
            if fixed is not None and length - size != fixed:
                raise Unread
        offset = data_end + (-length & 3)


def text(buf: bytes, at: int) -> str:
    """The UTF-8 value of the vendor-0 AVP at `at`; `Unread` when it is absent (-1) or not UTF-8."""
    if at < 0:
        raise Unread
    return utf8(buf[at + 8 : end_of(buf, at)])


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unread from None
