"""A CCR read straight from its bytes into the charging request: the gateway's hot path.

Why: decoding a CCR into `Avp` objects (`codec.decode`) and reading them (`gy.parse_ccr`) was a
third of the gateway's CPU (`perf` of the compiled DGW, 2026-12-07): ~25 objects a CCR made, walked
by the collector and freed. `read_ccr` walks the same bytes once and makes only the
`ChargeRequest` and the few AVPs an answer is made from (`KEPT`).

It reads only CCRs it can charge, and gives up (None) on anything else: another command, a
malformed or unknown-mandatory AVP, a missing or invalid value, a Failed-AVP. The caller then
takes the full path (`decode`, `parse_ccr`), which answers every error as before, so this path
never answers differently; `tests/unit/test_ccr_reader.py` holds it to `parse_ccr` on generated
and mutated CCRs.
"""

from __future__ import annotations

from typing import Final

from cellcelly.dgw.gy import (
    CONTEXT_SERVICE,
    called_digits,
    country_of_mcc,
    service_usage,
    uli_mcc,
)
from cellcelly.diameter.avp_bytes import (
    Unread,
    credit_control,
    end_of,
    header,
    i32_at,
    text,
    u32_at,
    u64_at,
    utf8,
    vendor_of,
)
from cellcelly.diameter.codec import (
    _FIXED_BY_INT,
    _GROUPED_INT,
    DICTIONARY,
    MAX_DEPTH,
    Avp,
    Message,
    decode_avps,
)
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    AVP_M,
    AVP_V,
    HEADER_LENGTH,
    Cmd,
    Code,
)
from cellcelly.domain.catalogue import HOME_LOCATION
from cellcelly.domain.charging import REQUEST_TYPES, ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.limits import session_id_fits, units_fit
from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn
from cellcelly.domain.units import Service

# what a CCR's answers are made from once it is read (`build_cca`, `error_answer`, the gateway's
# `_told`, the tracked session's origin): the top-level IETF AVPs the message `read_ccr` gives
# holds, and all a CCR keeps while it waits for the OCS (`Message.keep_only`)
KEPT: Final = frozenset(
    int(code)
    for code in (
        Code.SESSION_ID,
        Code.ORIGIN_HOST,
        Code.ORIGIN_REALM,
        Code.PROXY_INFO,
        Code.OC_SUPPORTED_FEATURES,
    )
)
# the IETF AVPs we know: one with the M bit not among them is answered 5001 (RFC 6733 §7.1.5)
KNOWN_IETF: Final = frozenset(code for code, vendor in DICTIONARY if vendor == 0)

# The codes as literals: compiled, an `IntEnum` member is an attribute looked up and compared as a
# Python object, a literal a C int (tests/unit/test_ccr_reader.py holds them to `Code`)
_SESSION_ID: Final = 263
_ORIGIN_HOST: Final = 264
_ORIGIN_REALM: Final = 296
_DESTINATION_REALM: Final = 283
_AUTH_APPLICATION_ID: Final = 258
_CC_REQUEST_TYPE: Final = 416
_CC_REQUEST_NUMBER: Final = 415
_REQUESTED_ACTION: Final = 436
_SERVICE_CONTEXT_ID: Final = 461
_SUBSCRIPTION_ID: Final = 443
_SUBSCRIPTION_ID_TYPE: Final = 450
_SUBSCRIPTION_ID_DATA: Final = 444
_MSCC: Final = 456
_RATING_GROUP: Final = 432
_REQUESTED_SERVICE_UNIT: Final = 437
_USED_SERVICE_UNIT: Final = 446
_CC_TIME: Final = 420
_CC_SERVICE_SPECIFIC_UNITS: Final = 417
_CC_TOTAL_OCTETS: Final = 421
_CC_INPUT_OCTETS: Final = 412
_CC_OUTPUT_OCTETS: Final = 414
_CALLED_STATION_ID: Final = 30
_FAILED_AVP: Final = 279
_PROXY_INFO: Final = 284
_OC_SUPPORTED_FEATURES: Final = 621
_SGSN_MCC_MNC: Final = 18  # 3GPP's
_USER_LOCATION_INFO: Final = 22  # 3GPP's
_CALLED_PARTY_ADDRESS: Final = 832  # 3GPP's
_ADDRESS_DATA: Final = 897  # 3GPP's
_VENDOR_3GPP: Final = 10415


class _Read:
    """What one walk over a CCR's AVPs found: where the AVPs `_request` reads start, their
    headers' offsets (-1: not there; the ends are read from the headers). Plain ints, not a dict
    of tuples: compiled, they are fields of this object and cost no allocation."""

    def __init__(self) -> None:
        self.session = self.host = self.realm = self.destination_realm = self.app = -1
        self.kind = self.number = self.action = self.context = -1
        self.subscriptions: list[int] = []
        self.msccs: list[int] = []
        self.kept: list[int] = []  # the `KEPT` AVPs' starts (their headers'), in order
        # the first location and called number in a depth-first walk (`gy._where`'s order)
        self.location = self.called = -1


def read_ccr(frame: bytes) -> tuple[Message, ChargeRequest] | None:
    """The CCR in `frame` and its charging request, its message holding only the `KEPT` AVPs; None
    when it is not one this path reads (see the module's docstring)."""
    read = credit_control(frame, request=True)
    if read is None:
        return None
    flags, hbh, e2e = read
    found = _Read()
    try:
        _walk(frame, HEADER_LENGTH, len(frame), 0, found)
        req = _request(frame, found)
    except Unread:
        return None
    avps = []
    for at in found.kept:
        code, avp_flags, avp_length = header(frame, at)
        if code in _GROUPED_INT:  # vendor 0: the key is the code
            avps.append(Avp(code, avp_flags, 0, b"", decode_avps(frame, at + 8, at + avp_length, 1)))
        else:
            avps.append(Avp(code, avp_flags, 0, frame[at + 8 : at + avp_length]))
    return Message(Cmd.CREDIT_CONTROL, flags, APP_CREDIT_CONTROL, hbh, e2e, avps), req


def _walk(buf: bytes, offset: int, end: int, depth: int, found: _Read) -> None:
    """Check buf[offset:end]'s AVPs as `codec.decode_avps` does (raising Unread where it would
    raise), refuse an unknown mandatory IETF AVP (`gateway._unsupported_mandatory`), and note in
    `found` where what `_request` reads is."""
    grouped, fixed_of, known = _GROUPED_INT, _FIXED_BY_INT, KNOWN_IETF
    while offset < end:
        if end - offset < 8:
            raise Unread
        code, flags, length = header(buf, offset)
        vendor = vendor_of(buf, offset, flags, end)
        size = 12 if vendor else 8
        data_end = offset + length
        if length < size or data_end > end:
            raise Unread
        if vendor == 0:
            if flags & AVP_M and code not in known or code == _FAILED_AVP:
                raise Unread
            if depth == 0:
                _note(found, code, offset)
            elif code == _CALLED_STATION_ID and found.called < 0:
                found.called = offset
        elif vendor == _VENDOR_3GPP:
            if found.location < 0 and (code == _SGSN_MCC_MNC or code == _USER_LOCATION_INFO and length >= 16):
                found.location = offset
            if found.called < 0 and (code == _CALLED_PARTY_ADDRESS or code == _ADDRESS_DATA):
                found.called = offset
        key = (vendor << 32) | code
        if key in grouped:
            if depth >= MAX_DEPTH:
                raise Unread
            _walk(buf, offset + size, data_end, depth + 1, found)
        else:
            fixed = fixed_of.get(key)
            if fixed is not None and length - size != fixed:
                raise Unread
        offset = data_end + (-length & 3)


def _note(found: _Read, code: int, offset: int) -> None:
    """A top-level IETF AVP: the first of each code `_request` reads, every MSCC and
    Subscription-Id, every `KEPT` one."""
    if code == _MSCC:
        found.msccs.append(offset)
    elif code == _SUBSCRIPTION_ID:
        found.subscriptions.append(offset)
    elif code == _SESSION_ID:
        if found.session < 0:
            found.session = offset
        found.kept.append(offset)
    elif code == _ORIGIN_HOST:
        if found.host < 0:
            found.host = offset
        found.kept.append(offset)
    elif code == _ORIGIN_REALM:
        if found.realm < 0:
            found.realm = offset
        found.kept.append(offset)
    elif code == _DESTINATION_REALM:
        if found.destination_realm < 0:
            found.destination_realm = offset
    elif code == _AUTH_APPLICATION_ID:
        if found.app < 0:
            found.app = offset
    elif code == _CC_REQUEST_TYPE:
        if found.kind < 0:
            found.kind = offset
    elif code == _CC_REQUEST_NUMBER:
        if found.number < 0:
            found.number = offset
    elif code == _REQUESTED_ACTION:
        if found.action < 0:
            found.action = offset
    elif code == _SERVICE_CONTEXT_ID:
        if found.context < 0:
            found.context = offset
    elif code == _PROXY_INFO or code == _OC_SUPPORTED_FEATURES:
        found.kept.append(offset)
    elif code == _CALLED_STATION_ID and found.called < 0:
        found.called = offset


def _request(buf: bytes, found: _Read) -> ChargeRequest:
    """`gy.parse_ccr`'s request from what `_walk` found; Unread where parse_ccr would refuse."""
    session_id = text(buf, found.session)
    text(buf, found.host)  # the peer reads both as UTF-8 (peer._IDENTITY_AVPS)
    text(buf, found.realm)
    if not session_id_fits(session_id) or found.destination_realm < 0:
        raise Unread
    if _u32(buf, found.app) != APP_CREDIT_CONTROL:
        raise Unread
    kind = REQUEST_TYPES.get(_i32(buf, found.kind))
    number = _u32(buf, found.number)
    if kind is None:
        raise Unread
    if kind is RequestType.EVENT and found.action >= 0 and _i32(buf, found.action) != 0:
        raise Unread
    default_service = None
    if found.context >= 0:
        default_service = CONTEXT_SERVICE.get(text(buf, found.context))
    msisdn = _msisdn(buf, found.subscriptions)
    if not msisdn and kind in (RequestType.INITIAL, RequestType.EVENT):
        raise Unread
    location, destination = HOME_LOCATION, ""
    at = found.location
    if at >= 0:
        code, _, length = header(buf, at)
        data = buf[at + 12 : at + length]  # a 3GPP AVP: a 12-byte header
        location = country_of_mcc(utf8(data)[:3] if code == _SGSN_MCC_MNC else uli_mcc(data))
    at = found.called
    if at >= 0:
        code, flags, length = header(buf, at)
        size = 12 if flags & AVP_V else 8
        destination = called_digits(utf8(buf[at + size : at + length]))
    services: list[ServiceUsage] = []
    for at in found.msccs:
        services.append(_usage(buf, at + 8, end_of(buf, at), kind, default_service, destination))
    if not found.msccs and kind is RequestType.EVENT:
        # a bare event: one unit of the context's service on rating group 0
        services.append(_usage(buf, 0, 0, kind, default_service, destination))
    return ChargeRequest(session_id, kind, number, msisdn, tuple(services), location)


def _usage(
    buf: bytes, offset: int, end: int, kind: RequestType, default_service: Service | None, destination: str
) -> ServiceUsage:
    """`parse_ccr`'s usage of one Multiple-Services-Credit-Control in buf[offset:end]."""
    rating_group = rsu = -1
    used_service: Service | None = None
    used = 0
    while offset < end:
        code, flags, length = header(buf, offset)
        if not flags & AVP_V:
            if code == _RATING_GROUP:
                if rating_group < 0:
                    rating_group = u32_at(buf, offset + 8)
            elif code == _REQUESTED_SERVICE_UNIT:
                if rsu < 0:
                    rsu = offset
            elif code == _USED_SERVICE_UNIT:
                service, amount = _units(buf, offset + 8, offset + length)
                used_service = used_service or service
                used = _fitting(used + (amount or 0))
        offset += length + (-length & 3)
    requested_service, requested = (None, None) if rsu < 0 else _units(buf, rsu + 8, end_of(buf, rsu))
    usage = service_usage(
        kind,
        max(rating_group, 0),
        rsu >= 0,
        requested_service or used_service or default_service,
        requested,
        used,
        destination,
    )
    if usage is None:
        raise Unread
    return usage


def _units(buf: bytes, offset: int, end: int) -> tuple[Service | None, int | None]:
    """`gy._units` of the Requested- or Used-Service-Unit in buf[offset:end]."""
    total = up = down = -1
    while offset < end:
        code, flags, length = header(buf, offset)
        if not flags & AVP_V:
            at = offset + 8
            if code == _CC_TIME:
                return Service.VOICE, u32_at(buf, at)
            if code == _CC_SERVICE_SPECIFIC_UNITS:
                return Service.SMS, _fitting(u64_at(buf, at))
            if code == _CC_TOTAL_OCTETS and total < 0:
                total = at
            elif code == _CC_INPUT_OCTETS and up < 0:
                up = at
            elif code == _CC_OUTPUT_OCTETS and down < 0:
                down = at
        offset += length + (-length & 3)
    if total >= 0:
        return Service.DATA, _fitting(u64_at(buf, total))
    if up >= 0 or down >= 0:
        octets_up = _fitting(u64_at(buf, up)) if up >= 0 else 0
        octets_down = _fitting(u64_at(buf, down)) if down >= 0 else 0
        return Service.DATA, _fitting(octets_up + octets_down)
    return None, None


def _msisdn(buf: bytes, subscriptions: list[int]) -> str:
    """`gy.msisdn_of`: the first E.164 Subscription-Id's national MSISDN, or ""."""
    for at in subscriptions:
        offset, end = at + 8, end_of(buf, at)
        kind = data = -1
        while offset < end:
            code, flags, length = header(buf, offset)
            if not flags & AVP_V:
                if code == _SUBSCRIPTION_ID_TYPE and kind < 0:
                    kind = offset
                elif code == _SUBSCRIPTION_ID_DATA and data < 0:
                    data = offset
            offset += length + (-length & 3)
        if kind < 0 or data < 0:
            raise Unread
        if i32_at(buf, kind + 8) != 0:  # not END_USER_E164
            continue
        try:
            return Msisdn.parse(text(buf, data)).national
        except InvalidMsisdn:
            raise Unread from None
    return ""


def _u32(buf: bytes, at: int) -> int:
    if at < 0:
        raise Unread
    return u32_at(buf, at + 8)


def _i32(buf: bytes, at: int) -> int:
    if at < 0:
        raise Unread
    return i32_at(buf, at + 8)


def _fitting(amount: int) -> int:
    if not units_fit(amount):
        raise Unread
    return amount
