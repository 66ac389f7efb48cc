"""Client-side Gy helpers: build a CCR, read a CCA (RFC 8506 with 3GPP TS 32.299 AVPs).

Used by the traffic generator and by tests that play the charging client. One CCR carries one
or more Multiple-Services-Credit-Control (MSCC) AVPs, all of one service domain (the
Service-Context-Id is per message):

    build_ccr(session_id=sid, origin=peer, destination_realm="cellcelly.local",
              request_type=RequestType.INITIAL, request_number=0, msisdn="5321234567",
              service="voice", rating_group=1, requested=None, destination="905551112233")

or, for several rating groups, `services=[ServiceRequest("data", 2, ...), ServiceRequest("data", 10)]`
instead of the single-service keywords. Units are the service's base unit: seconds (CC-Time),
octets (CC-Total-Octets), messages (CC-Service-Specific-Units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cellcelly.diameter.codec import (
    NTP_OFFSET,
    Avp,
    EncodedMessage,
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
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    FinalUnitAction,
    RequestType,
    Result,
    SubscriptionIdType,
)
from cellcelly.diameter.peer import LocalPeer

ServiceName = Literal["voice", "data", "sms"]

SERVICE_CONTEXT: dict[str, str] = {"data": CONTEXT_PS, "voice": CONTEXT_IMS, "sms": CONTEXT_SMS}
UNIT_CODE: dict[str, Code] = {
    "voice": Code.CC_TIME,
    "data": Code.CC_TOTAL_OCTETS,
    "sms": Code.CC_SERVICE_SPECIFIC_UNITS,
}
ADDRESS_TYPE_MSISDN = 1  # Address-Type of TS 32.299
REQUESTED_ACTION_DIRECT_DEBITING = 0
MULTIPLE_SERVICES_SUPPORTED = 1
_UNIT_CODES = (Code.CC_TIME, Code.CC_TOTAL_OCTETS, Code.CC_SERVICE_SPECIFIC_UNITS)


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """One MSCC of a CCR.

    `requested`: None = an empty Requested-Service-Unit (the server picks its default quota),
    0 = no Requested-Service-Unit at all (report only), n = ask for n units.
    `used` > 0 adds a Used-Service-Unit. `destination` (digits) is the called party for voice
    or the recipient for SMS; unused for data.
    """

    service: ServiceName
    rating_group: int
    requested: int | None = None
    used: int = 0
    destination: str = ""

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        service: ServiceName,
        rating_group: int,
        requested: int | None = None,
        used: int = 0,
        destination: str = "",
    ) -> None:
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "rating_group", rating_group)
        object.__setattr__(self, "requested", requested)
        object.__setattr__(self, "used", used)
        object.__setattr__(self, "destination", destination)


def _unit(service: str, amount: int) -> Avp:
    code = UNIT_CODE[service]
    return Avp.u32(code, amount) if code == Code.CC_TIME else Avp.u64(code, amount)


def _mscc(s: ServiceRequest) -> Avp:
    children = [Avp.u32(Code.RATING_GROUP, s.rating_group)]
    if s.requested is None:
        children.append(Avp.grouped(Code.REQUESTED_SERVICE_UNIT, []))
    elif s.requested > 0:
        children.append(Avp.grouped(Code.REQUESTED_SERVICE_UNIT, [_unit(s.service, s.requested)]))
    if s.used > 0:
        children.append(Avp.grouped(Code.USED_SERVICE_UNIT, [_unit(s.service, s.used)]))
    return Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def _service_information(service: str, destination: str, mcc_mnc: str) -> Avp | None:
    v = VENDOR_3GPP
    if service == "data":
        inner = Avp.grouped(
            Code3gpp.PS_INFORMATION,
            [Avp.utf8(Code3gpp.SGSN_MCC_MNC, mcc_mnc, vendor=v, mandatory=False)],
            vendor=v,
        )
    elif service == "voice":
        if not destination:
            return None
        inner = Avp.grouped(
            Code3gpp.IMS_INFORMATION,
            [Avp.utf8(Code3gpp.CALLED_PARTY_ADDRESS, f"tel:+{destination}", vendor=v)],
            vendor=v,
        )
    else:
        if not destination:
            return None
        address = Avp.grouped(
            Code3gpp.RECIPIENT_ADDRESS,
            [
                Avp.utf8(Code3gpp.ADDRESS_DATA, destination, vendor=v),
                Avp.i32(Code3gpp.ADDRESS_TYPE, ADDRESS_TYPE_MSISDN, vendor=v),
            ],
            vendor=v,
        )
        inner = Avp.grouped(
            Code3gpp.SMS_INFORMATION, [Avp.grouped(Code3gpp.RECIPIENT_INFO, [address], vendor=v)], vendor=v
        )
    return Avp.grouped(Code3gpp.SERVICE_INFORMATION, [inner], vendor=v)


def build_ccr(
    *,
    session_id: str,
    origin: LocalPeer,
    destination_realm: str,
    request_type: RequestType,
    request_number: int,
    msisdn: str | None = None,
    service: ServiceName = "voice",
    rating_group: int = 1,
    requested: int | None = None,
    used: int = 0,
    destination: str = "",
    mcc_mnc: str = "28601",
    event_timestamp: int | None = None,
    services: Sequence[ServiceRequest] | None = None,
) -> Message:
    """A Credit-Control-Request (hop-by-hop and end-to-end are left 0 for the peer to fill in).

    `msisdn` is national ("5321234567"); it goes out as E.164 "90"+msisdn in Subscription-Id.
    Either the single-service keywords (`service`, `rating_group`, `requested`, `used`,
    `destination`) describe the one MSCC, or `services` lists them all (then those keywords are
    ignored); every service in one CCR must be of the same domain. `mcc_mnc` is the visited
    network (3GPP-SGSN-MCC-MNC, sent for data). `event_timestamp` (Unix seconds) adds
    Event-Timestamp when given. Requested-Action DIRECT_DEBITING is added for EVENT requests.
    """
    if services is None:
        services = (ServiceRequest(service, rating_group, requested, used, destination),)
    if not services:
        raise ValueError("a CCR needs at least one service")
    kind = services[0].service
    if any(s.service != kind for s in services):
        raise ValueError("all services of one CCR must be of the same domain (one Service-Context-Id)")
    if kind not in SERVICE_CONTEXT:
        raise ValueError(f"unknown service {kind!r}")
    avps = [
        Avp.utf8(Code.SESSION_ID, session_id),
        *origin.identity(),
        Avp.utf8(Code.DESTINATION_REALM, destination_realm),
        Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
        Avp.utf8(Code.SERVICE_CONTEXT_ID, SERVICE_CONTEXT[kind]),
        Avp.i32(Code.CC_REQUEST_TYPE, int(request_type)),
        Avp.u32(Code.CC_REQUEST_NUMBER, request_number),
    ]
    if event_timestamp is not None:
        avps.append(Avp.time(Code.EVENT_TIMESTAMP, event_timestamp))
    if msisdn is not None:
        avps.append(
            Avp.grouped(
                Code.SUBSCRIPTION_ID,
                [
                    Avp.i32(Code.SUBSCRIPTION_ID_TYPE, SubscriptionIdType.END_USER_E164),
                    Avp.utf8(Code.SUBSCRIPTION_ID_DATA, "90" + msisdn),
                ],
            )
        )
    if request_type == RequestType.EVENT:
        avps.append(Avp.i32(Code.REQUESTED_ACTION, REQUESTED_ACTION_DIRECT_DEBITING))
    avps.append(Avp.i32(Code.MULTIPLE_SERVICES_INDICATOR, MULTIPLE_SERVICES_SUPPORTED))
    avps += [_mscc(s) for s in services]
    info = _service_information(kind, next((s.destination for s in services if s.destination), ""), mcc_mnc)
    if info is not None:
        avps.append(info)
    return Message(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P, APP_CREDIT_CONTROL, 0, 0, avps)


_EMPTY_RSU = packed_grouped(Code.REQUESTED_SERVICE_UNIT, b"")


class CcrTemplate:
    """The CCRs of one client, each AVP that stays the same between requests encoded once.

    A load generator's CPU shares the machine with the server it measures: building and encoding
    a CCR from `Avp` objects took ~12 µs, most of it AVPs that never change in a session (its
    identities, Subscription-Id, Service-Information). Here a run encodes what is the same for
    all its sessions, `session()` what is the same for one session, and `SessionCcrs.request`
    only the request type, number, timestamp and the MSCC. The bytes are those of `build_ccr`
    with `trailing` appended (tests/unit/test_ccr_builders.py holds them equal).
    """

    def __init__(self, origin: LocalPeer, destination_realm: str, trailing: Sequence[Avp] = ()) -> None:
        identity = [*origin.identity(), Avp.utf8(Code.DESTINATION_REALM, destination_realm)]
        identity.append(Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL))
        self._identity = b"".join(a.encode() for a in identity)
        self._context = {
            kind: Avp.utf8(Code.SERVICE_CONTEXT_ID, context).encode()
            for kind, context in SERVICE_CONTEXT.items()
        }
        self._direct_debiting = Avp.i32(Code.REQUESTED_ACTION, REQUESTED_ACTION_DIRECT_DEBITING).encode()
        self._indicator = Avp.i32(Code.MULTIPLE_SERVICES_INDICATOR, MULTIPLE_SERVICES_SUPPORTED).encode()
        self._trailing = b"".join(a.encode() for a in trailing)

    def session(
        self,
        session_id: str,
        msisdn: str,
        service: ServiceName,
        rating_group: int,
        destination: str = "",
        mcc_mnc: str = "28601",
    ) -> SessionCcrs:
        if service not in SERVICE_CONTEXT:
            raise ValueError(f"unknown service {service!r}")
        subscription = packed_grouped(
            Code.SUBSCRIPTION_ID,
            packed_i32(Code.SUBSCRIPTION_ID_TYPE, SubscriptionIdType.END_USER_E164)
            + packed_utf8(Code.SUBSCRIPTION_ID_DATA, "90" + msisdn),
        )
        info = _service_information(service, destination, mcc_mnc)
        return SessionCcrs(
            packed_utf8(Code.SESSION_ID, session_id) + self._identity + self._context[service],
            subscription,
            self._direct_debiting,
            self._indicator,
            (b"" if info is None else info.encode()) + self._trailing,
            service,
            rating_group,
        )


class SessionCcrs:
    """The CCRs of one session (`CcrTemplate.session`)."""

    __slots__ = ("head", "subscription", "direct_debiting", "indicator", "tail", "service", "rating_group")

    def __init__(
        self,
        head: bytes,
        subscription: bytes,
        direct_debiting: bytes,
        indicator: bytes,
        tail: bytes,
        service: ServiceName,
        rating_group: int,
    ) -> None:
        self.head = head
        self.subscription = subscription
        self.direct_debiting = direct_debiting
        self.indicator = indicator
        self.tail = tail
        self.service = service
        self.rating_group = rating_group

    def request(
        self,
        request_type: RequestType,
        request_number: int,
        requested: int | None = None,
        used: int = 0,
        event_timestamp: int | None = None,
    ) -> EncodedMessage:
        """The CCR `build_ccr` makes of these arguments and the session's, its AVPs as bytes."""
        parts = [
            self.head,
            packed_i32(Code.CC_REQUEST_TYPE, int(request_type)),
            packed_u32(Code.CC_REQUEST_NUMBER, request_number),
        ]
        if event_timestamp is not None:
            parts.append(packed_u32(Code.EVENT_TIMESTAMP, (event_timestamp + NTP_OFFSET) & 0xFFFFFFFF))
        parts.append(self.subscription)
        if request_type == RequestType.EVENT:
            parts.append(self.direct_debiting)
        mscc = packed_u32(Code.RATING_GROUP, self.rating_group)
        unit = UNIT_CODE[self.service]
        if requested is None:
            mscc += _EMPTY_RSU
        elif requested > 0:
            mscc += packed_grouped(Code.REQUESTED_SERVICE_UNIT, packed_unsigned(unit, requested))
        if used > 0:
            mscc += packed_grouped(Code.USED_SERVICE_UNIT, packed_unsigned(unit, used))
        parts += (self.indicator, packed_grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, mscc), self.tail)
        head = b"".join(parts)
        return EncodedMessage(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P, APP_CREDIT_CONTROL, 0, 0, head)


@dataclass(frozen=True, slots=True)
class MsccResult:
    rating_group: int | None
    result_code: int  # the MSCC's own Result-Code, else the command-level one
    granted: int | None  # Granted-Service-Unit in whichever unit it came; None when absent
    validity_time: int | None  # seconds
    final_unit: bool  # Final-Unit-Indication present
    redirect_url: str = ""  # its Redirect-Server-Address when the action is REDIRECT
    quota_holding_time: int | None = None  # 3GPP Quota-Holding-Time, seconds

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        rating_group: int | None,
        result_code: int,
        granted: int | None,
        validity_time: int | None,
        final_unit: bool,
        redirect_url: str = "",
        quota_holding_time: int | None = None,
    ) -> None:
        object.__setattr__(self, "rating_group", rating_group)
        object.__setattr__(self, "result_code", result_code)
        object.__setattr__(self, "granted", granted)
        object.__setattr__(self, "validity_time", validity_time)
        object.__setattr__(self, "final_unit", final_unit)
        object.__setattr__(self, "redirect_url", redirect_url)
        object.__setattr__(self, "quota_holding_time", quota_holding_time)


@dataclass(frozen=True, slots=True)
class CcaResult:
    session_id: str | None
    result_code: int  # Result-Code, else Experimental-Result-Code, else 0
    request_type: int | None
    request_number: int | None
    services: list[MsccResult] = field(default_factory=list)

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(
        self,
        session_id: str | None,
        result_code: int,
        request_type: int | None,
        request_number: int | None,
        services: list[MsccResult] | None = None,
    ) -> None:
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "result_code", result_code)
        object.__setattr__(self, "request_type", request_type)
        object.__setattr__(self, "request_number", request_number)
        object.__setattr__(self, "services", [] if services is None else services)

    @property
    def ok(self) -> bool:
        return self.result_code in (Result.SUCCESS, Result.LIMITED_SUCCESS)

    def service(self, rating_group: int) -> MsccResult | None:
        for s in self.services:
            if s.rating_group == rating_group:
                return s
        return None


def _granted(gsu: Avp | None) -> int | None:
    if gsu is None:
        return None
    for child in gsu.children or ():
        if child.vendor == 0 and child.code in _UNIT_CODES:
            return child.as_u32() if child.code == Code.CC_TIME else child.as_u64()
    up, down = gsu.find(Code.CC_INPUT_OCTETS), gsu.find(Code.CC_OUTPUT_OCTETS)
    if up is not None or down is not None:
        return (up.as_u64() if up else 0) + (down.as_u64() if down else 0)
    return None


def _result_code(holder: Message | Avp) -> int | None:
    avp = holder.find(Code.RESULT_CODE)
    if avp is not None:
        return avp.as_u32()
    exp = holder.find(Code.EXPERIMENTAL_RESULT)
    if exp is not None:
        code = exp.find(Code.EXPERIMENTAL_RESULT_CODE)
        if code is not None:
            return code.as_u32()
    return None


def _redirect(fui: Avp | None) -> str:
    """The top-up page a REDIRECT Final-Unit-Indication names (RFC 4006 §5.6.2), else ""."""
    if fui is None:
        return ""
    action, server = fui.find(Code.FINAL_UNIT_ACTION), fui.find(Code.REDIRECT_SERVER)
    address = server.find(Code.REDIRECT_SERVER_ADDRESS) if server is not None else None
    if action is None or action.as_i32() != FinalUnitAction.REDIRECT or address is None:
        return ""
    return address.as_str()


def parse_cca(msg: Message) -> CcaResult:
    """The parts of a Credit-Control-Answer a client acts on."""
    command = _result_code(msg) or 0
    kind = msg.find(Code.CC_REQUEST_TYPE)
    number = msg.find(Code.CC_REQUEST_NUMBER)
    services: list[MsccResult] = []
    for mscc in msg.find_all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL):
        rg = mscc.find(Code.RATING_GROUP)
        validity = mscc.find(Code.VALIDITY_TIME)
        code = _result_code(mscc)
        fui = mscc.find(Code.FINAL_UNIT_INDICATION)
        holding = mscc.find(Code3gpp.QUOTA_HOLDING_TIME, VENDOR_3GPP)
        services.append(
            MsccResult(
                rating_group=rg.as_u32() if rg is not None else None,
                result_code=command if code is None else code,
                granted=_granted(mscc.find(Code.GRANTED_SERVICE_UNIT)),
                validity_time=validity.as_u32() if validity is not None else None,
                final_unit=fui is not None,
                redirect_url=_redirect(fui),
                quota_holding_time=holding.as_u32() if holding is not None else None,
            )
        )
    return CcaResult(
        session_id=msg.session_id,
        result_code=command,
        request_type=kind.as_i32() if kind is not None else None,
        request_number=number.as_u32() if number is not None else None,
        services=services,
    )


__all__ = [
    "CcaResult",
    "CcrTemplate",
    "MsccResult",
    "ServiceName",
    "ServiceRequest",
    "SessionCcrs",
    "build_ccr",
    "parse_cca",
]
