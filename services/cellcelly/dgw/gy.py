"""Gy/Ro credit control (RFC 8506 with 3GPP TS 32.299 AVPs) to and from the charging domain.

`parse_ccr` turns a CCR into a `ChargeRequest` or raises `GyError` with the Result-Code and the
Failed-AVP to answer; `build_cca` turns the OCS's answer into the CCA.
"""

from __future__ import annotations

import re

from cellcelly.diameter.codec import (
    FIXED_SIZES,
    Avp,
    Message,
    packed_grouped,
    packed_i32,
    packed_u32,
    packed_unsigned,
    packed_utf8,
)
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    CONTEXT_IMS,
    CONTEXT_PS,
    CONTEXT_SMS,
    CONTEXT_VOICE_CS,
    VENDOR_3GPP,
    Code,
    Code3gpp,
    FinalUnitAction,
    RedirectAddressType,
    Result,
    SubscriptionIdType,
)
from cellcelly.diameter.peer import LocalPeer
from cellcelly.domain.catalogue import HOME_LOCATION
from cellcelly.domain.charging import REQUEST_TYPES, ChargeAnswer, ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.limits import MAX_SESSION_ID, MAX_UNITS, session_id_fits, units_fit
from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn
from cellcelly.domain.units import Service
from cellcelly.errors import ProtocolError

# Mobile Country Code of the visited network -> the country calling code the tariffs use
MCC_TO_COUNTRY = {
    "286": "90",  # Turkey
    "262": "49",  # Germany
    "208": "33",  # France
    "234": "44",  # United Kingdom
    "222": "39",  # Italy
    "214": "34",  # Spain
    "204": "31",  # Netherlands
    "310": "1",  # United States
    "311": "1",
}

CONTEXT_SERVICE = {
    CONTEXT_PS: Service.DATA,
    CONTEXT_IMS: Service.VOICE,
    CONTEXT_VOICE_CS: Service.VOICE,
    CONTEXT_SMS: Service.SMS,
}

_DIGITS = re.compile(r"\d+")


class GyError(ProtocolError):
    def __init__(self, result: Result, text: str, failed: Avp | None = None) -> None:
        super().__init__(text)
        self.result = self.diameter_result = result
        self.failed = failed


def _missing(code: int, vendor: int = 0) -> GyError:
    """RFC 6733 §7.5: Failed-AVP holds an example of the missing AVP, zero-filled at its minimum size."""
    avp = Avp(code, vendor=vendor, data=b"\x00" * FIXED_SIZES.get((code, vendor), 0))
    return GyError(Result.MISSING_AVP, f"{avp.name} is missing", avp)


def _u32(avp: Avp) -> int:
    try:
        return avp.as_u32()
    except Exception:  # the codec checked sizes of known AVPs; this is defence in depth
        raise GyError(Result.INVALID_AVP_VALUE, f"{avp.name}: bad value", avp) from None


def msisdn_of(ccr: Message) -> str:
    """The subscriber's national MSISDN from Subscription-Id (E.164 "90"+10 digits or bare)."""
    for sub in ccr.find_all(Code.SUBSCRIPTION_ID):
        kind = sub.find(Code.SUBSCRIPTION_ID_TYPE)
        data = sub.find(Code.SUBSCRIPTION_ID_DATA)
        if kind is None or data is None:
            raise _missing(Code.SUBSCRIPTION_ID_TYPE if kind is None else Code.SUBSCRIPTION_ID_DATA)
        if kind.as_i32() != SubscriptionIdType.END_USER_E164:
            continue
        text = data.as_str()
        try:
            return Msisdn.parse(text).national
        except InvalidMsisdn:
            raise GyError(Result.USER_UNKNOWN, f"not a CellCelly MSISDN: {text.strip()!r}", data) from None
    return ""


def _where(ccr: Message) -> tuple[str, str]:
    """(visited country, called number) from the service information: the first of each in one
    depth-first pass over the CCR (as `Message.walk` orders it), stopping once both are found."""
    found: list[str | None] = [None, None]  # location, destination
    _look(ccr.avps, found)
    return found[0] or HOME_LOCATION, found[1] or ""


def _look(avps: list[Avp], found: list[str | None]) -> bool:
    """`_where`'s pass over one level (a recursion rather than `walk()`'s generator: this runs for
    every CCR); whether both were found."""
    for avp in avps:
        code = avp.code
        if avp.vendor == VENDOR_3GPP:
            if found[0] is None:
                if code == Code3gpp.SGSN_MCC_MNC:
                    found[0] = country_of_mcc(avp.as_str()[:3])
                elif code == Code3gpp.USER_LOCATION_INFO and len(avp.data) >= 4:
                    found[0] = country_of_mcc(uli_mcc(avp.data))
            if found[1] is None and code in (Code3gpp.CALLED_PARTY_ADDRESS, Code3gpp.ADDRESS_DATA):
                found[1] = called_digits(avp.as_str())
        elif found[1] is None and code == Code.CALLED_STATION_ID and avp.vendor == 0:
            found[1] = called_digits(avp.as_str())
        if found[0] is not None and found[1] is not None:
            return True
        if avp.children and _look(avp.children, found):
            return True
    return False


def called_digits(text: str) -> str:
    """The digits of a called address (tel:+49..., sip:..., or bare), at most what a record keeps."""
    return "".join(_DIGITS.findall(text))[:32]


def country_of_mcc(mcc: str) -> str:
    """The country calling code a visited network's MCC is rated by (`mcc262` when not known)."""
    return MCC_TO_COUNTRY.get(mcc, f"mcc{mcc}")


def uli_mcc(data: bytes) -> str:
    """The MCC of a 3GPP-User-Location-Info of at least 4 bytes (TS 29.061: a type octet, then
    MCC/MNC in BCD: MCC digit 2|1, MNC3|MCC3, ...)."""
    b1, b2 = data[1], data[2]
    return f"{b1 & 0x0F}{b1 >> 4}{b2 & 0x0F}"


def _u64(avp: Avp) -> int:
    """An Unsigned64 amount, refused (5004) beyond what one usage record holds (`MAX_UNITS`)."""
    value = avp.as_u64()
    if not units_fit(value):
        raise GyError(Result.INVALID_AVP_VALUE, f"{avp.name} above {MAX_UNITS}", avp)
    return value


def _units(group: Avp | None) -> tuple[Service | None, int | None]:
    """(service implied by the unit, amount) of an RSU/USU/GSU; (None, None) when empty."""
    if group is None:
        return None, None
    for child in group.children or ():
        if child.vendor:
            continue
        if child.code == Code.CC_TIME:
            return Service.VOICE, child.as_u32()
        if child.code == Code.CC_SERVICE_SPECIFIC_UNITS:
            return Service.SMS, _u64(child)
    total = group.find(Code.CC_TOTAL_OCTETS)
    if total is not None:
        return Service.DATA, _u64(total)
    up, down = group.find(Code.CC_INPUT_OCTETS), group.find(Code.CC_OUTPUT_OCTETS)
    if up is not None or down is not None:
        return Service.DATA, _fits(group, (_u64(up) if up else 0) + (_u64(down) if down else 0))
    return None, None


def _fits(group: Avp, amount: int) -> int:
    """A sum of amounts (input + output octets, several Used-Service-Units): the group is at fault."""
    if not units_fit(amount):
        raise GyError(Result.INVALID_AVP_VALUE, f"{group.name}: units above {MAX_UNITS} in all", group)
    return amount


def parse_ccr(ccr: Message) -> tuple[ChargeRequest, Service]:
    """The charging request a CCR asks for; raises GyError to be answered instead."""
    session = ccr.find(Code.SESSION_ID)
    if session is None:
        raise _missing(Code.SESSION_ID)
    session_id = session.as_str()
    if not session_id_fits(session_id):
        # the system of record keeps at most this many characters (usage_records.session_id)
        raise GyError(Result.INVALID_AVP_VALUE, f"Session-Id: 1 to {MAX_SESSION_ID} characters", session)
    for code in (Code.ORIGIN_HOST, Code.ORIGIN_REALM, Code.DESTINATION_REALM):
        if ccr.find(code) is None:
            raise _missing(code)
    app = ccr.find(Code.AUTH_APPLICATION_ID)
    if app is None:
        raise _missing(Code.AUTH_APPLICATION_ID)
    if _u32(app) != APP_CREDIT_CONTROL:
        raise GyError(Result.INVALID_AVP_VALUE, "Auth-Application-Id must be 4", app)
    kind_avp = ccr.find(Code.CC_REQUEST_TYPE)
    number_avp = ccr.find(Code.CC_REQUEST_NUMBER)
    if kind_avp is None:
        raise _missing(Code.CC_REQUEST_TYPE)
    if number_avp is None:
        raise _missing(Code.CC_REQUEST_NUMBER)
    kind = REQUEST_TYPES.get(kind_avp.as_i32())  # the engine's request types are RFC 8506's
    if kind is None:
        raise GyError(Result.INVALID_AVP_VALUE, "unknown CC-Request-Type", kind_avp)
    if kind is RequestType.EVENT:
        action = ccr.find(Code.REQUESTED_ACTION)
        if action is not None and action.as_i32() != 0:
            raise GyError(Result.INVALID_AVP_VALUE, "only DIRECT_DEBITING is supported", action)
    context = ccr.find(Code.SERVICE_CONTEXT_ID)
    default_service = CONTEXT_SERVICE.get(context.as_str()) if context is not None else None
    msisdn = msisdn_of(ccr)
    if not msisdn and kind in (RequestType.INITIAL, RequestType.EVENT):
        raise _missing(Code.SUBSCRIPTION_ID)
    location, destination = _where(ccr)
    services: list[ServiceUsage] = []
    groups = ccr.find_all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    if not groups and kind is RequestType.EVENT:
        # a bare event: one unit of the context's service on rating group 0
        groups = [Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [])]
    for mscc in groups:
        rg_avp = mscc.find(Code.RATING_GROUP)
        rating_group = _u32(rg_avp) if rg_avp is not None else 0
        rsu = mscc.find(Code.REQUESTED_SERVICE_UNIT)
        requested_service, requested = _units(rsu)
        used_service, used = None, 0
        for usu in mscc.find_all(Code.USED_SERVICE_UNIT):
            s, amount = _units(usu)
            used_service = used_service or s
            used = _fits(usu, used + (amount or 0))
        usage = service_usage(
            kind,
            rating_group,
            rsu is not None,
            requested_service or used_service or default_service,
            requested,
            used,
            destination,
        )
        if usage is None:
            raise GyError(Result.MISSING_AVP, "say the service: Service-Context-Id or units", mscc)
        services.append(usage)
    request = ChargeRequest(session_id, kind, _u32(number_avp), msisdn, tuple(services), location)
    return request, default_service or (services[0].service if services else Service.DATA)


def service_usage(
    kind: RequestType,
    rating_group: int,
    asked: bool,
    service: Service | None,
    requested: int | None,
    used: int,
    destination: str,
) -> ServiceUsage | None:
    """One MSCC's usage: `asked` whether it had a Requested-Service-Unit (`requested` its amount,
    None when empty), `service` the one its units or the context imply; None when there is none."""
    if service is None:
        return None
    if not asked:
        wanted = None if kind in (RequestType.INITIAL, RequestType.EVENT) else 0
    else:
        wanted = requested  # an empty RSU: None, the OCS's default quota
    if kind is RequestType.TERMINATE:
        wanted = 0
    if kind is RequestType.EVENT and wanted is None:
        wanted = 1
    return ServiceUsage(rating_group, service, wanted, used, destination)


_GRANT_CODE = {
    Service.VOICE: Code.CC_TIME,
    Service.DATA: Code.CC_TOTAL_OCTETS,
    Service.SMS: Code.CC_SERVICE_SPECIFIC_UNITS,
}


def _final_unit(redirect_url: str) -> Avp:
    """Final-Unit-Indication: TERMINATE, or REDIRECT to the top-up page (Redirect-Server, §8.37)."""
    if not redirect_url:
        return Avp.grouped(
            Code.FINAL_UNIT_INDICATION, [Avp.i32(Code.FINAL_UNIT_ACTION, FinalUnitAction.TERMINATE)]
        )
    server = Avp.grouped(
        Code.REDIRECT_SERVER,
        [
            Avp.i32(Code.REDIRECT_ADDRESS_TYPE, RedirectAddressType.URL),
            Avp.utf8(Code.REDIRECT_SERVER_ADDRESS, redirect_url),
        ],
    )
    return Avp.grouped(
        Code.FINAL_UNIT_INDICATION, [Avp.i32(Code.FINAL_UNIT_ACTION, FinalUnitAction.REDIRECT), server]
    )


def _identity(local: LocalPeer) -> bytes:
    """Origin-Host, Origin-Realm and Auth-Application-Id of a CCA, packed once for each gateway."""
    key = (local.origin_host, local.origin_realm)
    packed = _IDENTITIES.get(key)
    if packed is None:
        avps = [*local.identity(), Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL)]
        packed = _IDENTITIES[key] = b"".join(a.encode() for a in avps)
    return packed


_IDENTITIES: dict[tuple[str, str], bytes] = {}


def build_cca(ccr: Message, req: ChargeRequest, answer: ChargeAnswer, local: LocalPeer) -> Message:
    """The CCA, its AVPs packed straight to bytes (`codec.packed_*`: a few µs less of the gateway's
    CPU a CCR than `Avp` objects); AVPs appended to it later (DOIC's) follow them."""
    services = {u.rating_group: u.service for u in req.services}
    head = (
        packed_utf8(Code.SESSION_ID, req.session_id)
        + packed_u32(Code.RESULT_CODE, int(answer.result_code))
        + _identity(local)
        + packed_i32(Code.CC_REQUEST_TYPE, int(req.request_type))
        + packed_u32(Code.CC_REQUEST_NUMBER, req.request_number)
    )
    for r in answer.services:
        mscc = packed_u32(Code.RATING_GROUP, r.rating_group)
        if r.granted:
            code = _GRANT_CODE[services.get(r.rating_group, Service.DATA)]
            mscc += packed_grouped(Code.GRANTED_SERVICE_UNIT, packed_unsigned(code, r.granted))
        if r.validity_time is not None:
            mscc += packed_u32(Code.VALIDITY_TIME, r.validity_time)
        mscc += packed_u32(Code.RESULT_CODE, int(r.result_code))
        if r.final_unit:
            mscc += _final_unit(r.redirect_url).encode()
        if r.quota_holding_time:
            mscc += packed_u32(Code3gpp.QUOTA_HOLDING_TIME, r.quota_holding_time, VENDOR_3GPP)
        head += packed_grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, mscc)
    return ccr.encoded_answer(head)
