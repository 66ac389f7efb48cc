"""`build_cca` packs its AVPs straight to bytes: the same bytes, for any answer, as the CCA built of
`Avp` objects (`_reference` below, the gateway's builder before), Proxy-Info and DOIC included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.dgw.gy import _final_unit, build_cca, parse_ccr
from cellcelly.diameter import doic
from cellcelly.diameter.ccr import ServiceRequest, build_ccr
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import APP_CREDIT_CONTROL, VENDOR_3GPP, Code, Code3gpp, RequestType
from cellcelly.diameter.peer import LocalPeer
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, ResultCode, ServiceResult
from cellcelly.domain.units import Service

pytestmark = pytest.mark.unit

CLIENT = LocalPeer("pgw.test", "test.realm")
GATEWAY = LocalPeer("dgw.test", "cellcelly.local")
_UNIT = {
    Service.VOICE: Code.CC_TIME,
    Service.DATA: Code.CC_TOTAL_OCTETS,
    Service.SMS: Code.CC_SERVICE_SPECIFIC_UNITS,
}


def _reference(ccr: Message, req: ChargeRequest, answer: ChargeAnswer, local: LocalPeer) -> Message:
    services = {u.rating_group: u.service for u in req.services}
    avps = [
        Avp.utf8(Code.SESSION_ID, req.session_id),
        Avp.u32(Code.RESULT_CODE, int(answer.result_code)),
        *local.identity(),
        Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
        Avp.i32(Code.CC_REQUEST_TYPE, int(req.request_type)),
        Avp.u32(Code.CC_REQUEST_NUMBER, req.request_number),
    ]
    for r in answer.services:
        children = [Avp.u32(Code.RATING_GROUP, r.rating_group)]
        if r.granted:
            code = _UNIT[services.get(r.rating_group, Service.DATA)]
            unit = Avp.u32(code, r.granted) if code == Code.CC_TIME else Avp.u64(code, r.granted)
            children.append(Avp.grouped(Code.GRANTED_SERVICE_UNIT, [unit]))
        if r.validity_time is not None:
            children.append(Avp.u32(Code.VALIDITY_TIME, r.validity_time))
        children.append(Avp.u32(Code.RESULT_CODE, int(r.result_code)))
        if r.final_unit:
            children.append(_final_unit(r.redirect_url))
        if r.quota_holding_time:
            children.append(Avp.u32(Code3gpp.QUOTA_HOLDING_TIME, r.quota_holding_time, VENDOR_3GPP))
        avps.append(Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children))
    return ccr.answer(avps)


results = st.builds(
    ServiceResult,
    rating_group=st.integers(0, 2**32 - 1),
    result_code=st.sampled_from(list(ResultCode)),
    granted=st.integers(0, 2**32 - 1),  # a voice grant is CC-Time, Unsigned32
    validity_time=st.none() | st.integers(0, 2**32 - 1),
    final_unit=st.booleans(),
    redirect_url=st.sampled_from(["", "https://top.up/now", "http://x/ü"]),
    quota_holding_time=st.none() | st.integers(0, 2**32 - 1),
)


@given(
    service=st.sampled_from(["voice", "data", "sms"]),
    groups=st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True),
    answered=st.lists(results, max_size=4),
    result=st.sampled_from(list(ResultCode)),
    proxies=st.integers(0, 2),
    with_doic=st.booleans(),
    number=st.integers(0, 2**32 - 1),
)
def test_the_cca_is_the_reference_byte_for_byte(
    service: str,
    groups: list[int],
    answered: list[ServiceResult],
    result: ResultCode,
    proxies: int,
    with_doic: bool,
    number: int,
) -> None:
    ccr = build_ccr(
        session_id="pgw.test;1;7",
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=RequestType.UPDATE,
        request_number=number,
        msisdn="5321234567",
        services=[ServiceRequest(service, g, None, 0, "905551112233") for g in groups],  # type: ignore[arg-type]
    )
    ccr.avps += [
        Avp.grouped(Code.PROXY_INFO, [Avp.utf8(Code.PROXY_HOST, f"relay{i}")]) for i in range(proxies)
    ]
    ccr.hop_by_hop, ccr.end_to_end = 11, 12
    request = decode(ccr.encode())
    req, _ = parse_ccr(request)
    # some answered rating groups the request named (their unit by its service), some not (octets)
    answered = [ServiceResult(groups[0], r.result_code, r.granted) for r in answered[:1]] + answered
    answer = ChargeAnswer(req.session_id, req.request_type, req.request_number, result, tuple(answered))
    got, expected = build_cca(request, req, answer, GATEWAY), _reference(request, req, answer, GATEWAY)
    if with_doic:  # what the gateway appends after it (`_told`)
        got.avps.append(doic.supported())
        expected.avps.append(doic.supported())
    assert got.encode() == expected.encode()
    back = decode(got.encode())
    assert (back.hop_by_hop, back.end_to_end, back.session_id, back.result_code) == (
        11,
        12,
        "pgw.test;1;7",
        result,
    )
