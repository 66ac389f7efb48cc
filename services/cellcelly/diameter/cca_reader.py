"""A Credit-Control-Answer read straight from its bytes: the traffic generator's hot path.

Why: the generator decoded each CCA into ~12 `Avp` objects and read them (`ccr.parse_cca`): a
third of its CPU (`perf` of the compiled generator against the two-process path, 2026-12-07),
on the two cores it shares with the gateway and the OCS it measures. `read_cca` walks the bytes
once (`avp_bytes`) and makes only the `CcaResult`.

It reads the answers a charging server sends every time, and gives up (None) on anything else:
another command, a malformed AVP, an error answer (E bit), an Experimental-Result, a
Final-Unit-Indication, an overload report (`OC-OLR`, which the caller reads with `doic`). The
caller then decodes the frame and reads it with `parse_cca`, so this path never reads an answer
differently; `tests/unit/test_cca_reader.py` holds it to `parse_cca` on generated and mutated
answers.
"""

from __future__ import annotations

from typing import Final

from cellcelly.diameter.avp_bytes import (
    Unread,
    check,
    credit_control,
    end_of,
    header,
    i32_at,
    text,
    u32_at,
    u64_at,
)
from cellcelly.diameter.ccr import CcaResult, MsccResult
from cellcelly.diameter.constants import AVP_V, HEADER_LENGTH

# The codes as literals (ccr_reader.py says why; tests/unit/test_cca_reader.py holds them to `Code`)
_SESSION_ID: Final = 263
_RESULT_CODE: Final = 268
_EXPERIMENTAL_RESULT: Final = 297
_CC_REQUEST_TYPE: Final = 416
_CC_REQUEST_NUMBER: Final = 415
_MSCC: Final = 456
_RATING_GROUP: Final = 432
_GRANTED_SERVICE_UNIT: Final = 431
_VALIDITY_TIME: Final = 448
_FINAL_UNIT_INDICATION: Final = 430
_OC_OLR: Final = 623
_CC_TIME: Final = 420
_CC_SERVICE_SPECIFIC_UNITS: Final = 417
_CC_TOTAL_OCTETS: Final = 421
_CC_INPUT_OCTETS: Final = 412
_CC_OUTPUT_OCTETS: Final = 414
_QUOTA_HOLDING_TIME: Final = 871  # 3GPP's
_VENDOR_3GPP: Final = 10415


def read_cca(frame: bytes) -> CcaResult | None:
    """`parse_cca(decode(frame))`, or None when `frame` is not an answer this path reads (see the
    module's docstring)."""
    if credit_control(frame, request=False) is None:
        return None
    try:
        return _answer(frame, len(frame))
    except Unread:
        return None


def _answer(buf: bytes, end: int) -> CcaResult:
    check(buf, HEADER_LENGTH, end, 0)  # all of it first: what follows reads only checked AVPs
    session = result = kind = number = -1
    msccs: list[int] = []
    offset = HEADER_LENGTH
    while offset < end:
        code, flags, length = header(buf, offset)
        if not flags & AVP_V:
            if code == _SESSION_ID:
                session = offset if session < 0 else session
            elif code == _RESULT_CODE:
                result = offset if result < 0 else result
            elif code == _CC_REQUEST_TYPE:
                kind = offset if kind < 0 else kind
            elif code == _CC_REQUEST_NUMBER:
                number = offset if number < 0 else number
            elif code == _MSCC:
                msccs.append(offset)
            elif code == _EXPERIMENTAL_RESULT or code == _OC_OLR:
                raise Unread
        offset += length + (-length & 3)
    if result < 0:
        raise Unread  # parse_cca would look for an Experimental-Result, or make it 0
    command = _u32(buf, result)
    services = [_mscc(buf, at + 8, end_of(buf, at), command) for at in msccs]
    return CcaResult(
        text(buf, session) if session >= 0 else None,
        command,
        _i32(buf, kind) if kind >= 0 else None,
        _u32(buf, number) if number >= 0 else None,
        services,
    )


def _mscc(buf: bytes, offset: int, end: int, command: int) -> MsccResult:
    """`parse_cca`'s reading of one Multiple-Services-Credit-Control in buf[offset:end]."""
    rating_group = validity = result = holding = gsu = -1
    while offset < end:
        code, flags, length = header(buf, offset)
        if not flags & AVP_V:
            if code == _RATING_GROUP:
                rating_group = offset if rating_group < 0 else rating_group
            elif code == _VALIDITY_TIME:
                validity = offset if validity < 0 else validity
            elif code == _RESULT_CODE:
                result = offset if result < 0 else result
            elif code == _GRANTED_SERVICE_UNIT:
                gsu = offset if gsu < 0 else gsu
            elif code == _EXPERIMENTAL_RESULT or code == _FINAL_UNIT_INDICATION:
                raise Unread
        elif code == _QUOTA_HOLDING_TIME and holding < 0 and u32_at(buf, offset + 8) == _VENDOR_3GPP:
            holding = offset
        offset += length + (-length & 3)
    return MsccResult(
        _u32(buf, rating_group) if rating_group >= 0 else None,
        _u32(buf, result) if result >= 0 else command,
        _granted(buf, gsu + 8, end_of(buf, gsu)) if gsu >= 0 else None,
        _u32(buf, validity) if validity >= 0 else None,
        False,
        "",
        _u32(buf, holding, 12) if holding >= 0 else None,
    )


def _granted(buf: bytes, offset: int, end: int) -> int | None:
    """`ccr._granted`: the first unit AVP's value, else the octets up and down summed."""
    up = down = -1
    while offset < end:
        code, flags, length = header(buf, offset)
        if not flags & AVP_V:  # no vendor's AVP is a unit
            if code == _CC_TIME:
                return _u32(buf, offset)
            if code == _CC_TOTAL_OCTETS or code == _CC_SERVICE_SPECIFIC_UNITS:
                return _u64(buf, offset)
            if code == _CC_INPUT_OCTETS and up < 0:
                up = offset
            elif code == _CC_OUTPUT_OCTETS and down < 0:
                down = offset
        offset += length + (-length & 3)
    if up < 0 and down < 0:
        return None
    return (_u64(buf, up) if up >= 0 else 0) + (_u64(buf, down) if down >= 0 else 0)


# Every value read below is of a fixed size in the dictionary, which `check` held it to
# (tests/unit/test_cca_reader.py checks the dictionary says so)
def _u32(buf: bytes, at: int, size: int = 8) -> int:
    return u32_at(buf, at + size)


def _i32(buf: bytes, at: int) -> int:
    return i32_at(buf, at + 8)


def _u64(buf: bytes, at: int) -> int:
    return u64_at(buf, at + 8)
