"""The Diameter client the integration tests connect as (one identity, so an allowlist names it once),
and the CCRs it sends."""

from __future__ import annotations

from collections.abc import Callable

from cellcelly.diameter.codec import Avp, Message
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    CONTEXT_IMS,
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
)
from cellcelly.diameter.peer import LocalPeer, PeerAllowlist, PeerConnection

CLIENT = LocalPeer("pgw.test.local", "test.local", watchdog_interval=30)
PEERS = PeerAllowlist.parse("@test.local")  # CLIENT's realm may connect


def ccr_head(session: str, kind: int, number: int, msisdn: str | None, context: str) -> list[Avp]:
    """What every CCR from CLIENT to the DGW starts with, up to its Subscription-Id (none when
    `msisdn` is None); the caller appends the MSCC and any Service-Information."""
    avps = [
        Avp.utf8(Code.SESSION_ID, session),
        *CLIENT.identity(),
        Avp.utf8(Code.DESTINATION_REALM, "cellcelly.local"),
        Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
        Avp.utf8(Code.SERVICE_CONTEXT_ID, context),
        Avp.i32(Code.CC_REQUEST_TYPE, kind),
        Avp.u32(Code.CC_REQUEST_NUMBER, number),
    ]
    if msisdn is not None:
        subscription = [
            Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0),
            Avp.utf8(Code.SUBSCRIPTION_ID_DATA, "90" + msisdn),
        ]
        avps.append(Avp.grouped(Code.SUBSCRIPTION_ID, subscription))
    return avps


def voice_ccr(
    session: str,
    kind: int,
    number: int,
    msisdn: str | None,
    *,
    rg: int = 1,
    requested: int | None = 3600,
    used: int = 0,
    called: str = "tel:+905551112233",
    context: str = CONTEXT_IMS,
) -> Message:
    """A voice CCR from CLIENT (kind 1 initial, 2 update, 3 termination) for `msisdn` (None: no
    Subscription-Id): `requested` seconds asked for (never in a termination), `used` reported."""
    avps = ccr_head(session, kind, number, msisdn, context)
    mscc = [Avp.u32(Code.RATING_GROUP, rg)]
    if requested is not None and kind != 3:
        mscc.append(Avp.grouped(Code.REQUESTED_SERVICE_UNIT, [Avp.u32(Code.CC_TIME, requested)]))
    if used:
        mscc.append(Avp.grouped(Code.USED_SERVICE_UNIT, [Avp.u32(Code.CC_TIME, used)]))
    avps.append(Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, mscc))
    ims = Avp.grouped(
        Code3gpp.IMS_INFORMATION, [Avp.utf8(Code3gpp.CALLED_PARTY_ADDRESS, called, VENDOR_3GPP)], VENDOR_3GPP
    )
    avps.append(Avp.grouped(Code3gpp.SERVICE_INFORMATION, [ims], VENDOR_3GPP))
    return Message(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P, APP_CREDIT_CONTROL, avps=avps)


def granted_seconds(answer: Message) -> int:
    """The CC-Time granted in a CCA's MSCC (0 when none)."""
    mscc = answer.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    gsu = None if mscc is None else mscc.find(Code.GRANTED_SERVICE_UNIT)
    time_avp = None if gsu is None else gsu.find(Code.CC_TIME)
    return 0 if time_avp is None else time_avp.as_u32()


def cut_off(answer: Message) -> bool:
    """The OCS ended the quota: final units, or the credit limit reached (4012)."""
    mscc = answer.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    if mscc is None:
        return False
    result = mscc.find(Code.RESULT_CODE)
    return mscc.find(Code.FINAL_UNIT_INDICATION) is not None or (
        result is not None and result.as_u32() == 4012
    )


def answering(received: list[Message]) -> Callable[[PeerConnection, Message], Message]:
    """A client's handler for what the server asks (RAR, ASR): kept in `received`, answered 2001."""

    def on_server_request(conn: PeerConnection, msg: Message) -> Message:
        received.append(msg)
        sid = Avp.utf8(Code.SESSION_ID, msg.session_id or "")
        return msg.answer([sid, Avp.u32(Code.RESULT_CODE, 2001), *CLIENT.identity()])

    return on_server_request
