"""Client-side Gy helpers: `build_ccr` through the codec's bytes and back, the encoded-once
`CcrTemplate` byte for byte against it, and `parse_cca`."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.diameter import doic
from cellcelly.diameter.ccr import CcrTemplate, ServiceRequest, build_ccr, parse_cca
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    AVP_V,
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    RequestType,
)
from cellcelly.diameter.peer import LocalPeer

pytestmark = pytest.mark.unit

ORIGIN = LocalPeer("client.test", "test.realm")


def _wire(msg: Message) -> Message:
    """Through bytes and back, as the server sees it."""
    return decode(msg.encode())


def _ccr(**kwargs: object) -> Message:
    base: dict[str, object] = {
        "session_id": "client.test;1;2",
        "origin": ORIGIN,
        "destination_realm": "ocs.realm",
        "request_type": RequestType.INITIAL,
        "request_number": 0,
        "msisdn": "5321234567",
    }
    base.update(kwargs)
    return _wire(build_ccr(**base))  # type: ignore[arg-type]


def _one(parent: Message | Avp, code: int, vendor: int = 0) -> Avp:
    found = parent.find_all(code, vendor)
    assert len(found) == 1, f"{code}/{vendor}: {found}"
    return found[0]


def test_voice_ccr_i_header_and_base_avps() -> None:
    msg = _ccr(service="voice", rating_group=1, requested=None, destination="905551112233")
    assert msg.code == Cmd.CREDIT_CONTROL and msg.app == APP_CREDIT_CONTROL
    assert msg.flags == FLAG_R | FLAG_P
    assert msg.avps[0].code == Code.SESSION_ID  # RFC 6733 §8.8: Session-Id first
    assert msg.session_id == "client.test;1;2"
    assert _one(msg, Code.ORIGIN_HOST).as_str() == "client.test"
    assert _one(msg, Code.ORIGIN_REALM).as_str() == "test.realm"
    assert _one(msg, Code.DESTINATION_REALM).as_str() == "ocs.realm"
    assert _one(msg, Code.AUTH_APPLICATION_ID).as_u32() == 4
    assert _one(msg, Code.SERVICE_CONTEXT_ID).as_str() == "32260@3gpp.org"
    assert _one(msg, Code.CC_REQUEST_TYPE).as_i32() == 1
    assert _one(msg, Code.CC_REQUEST_NUMBER).as_u32() == 0
    assert _one(msg, Code.MULTIPLE_SERVICES_INDICATOR).as_i32() == 1
    assert msg.find(Code.REQUESTED_ACTION) is None  # only for events
    assert msg.find(Code.EVENT_TIMESTAMP) is None

    sub = _one(msg, Code.SUBSCRIPTION_ID)
    assert _one(sub, Code.SUBSCRIPTION_ID_TYPE).as_i32() == 0  # END_USER_E164
    assert _one(sub, Code.SUBSCRIPTION_ID_DATA).as_str() == "905321234567"

    mscc = _one(msg, Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert _one(mscc, Code.RATING_GROUP).as_u32() == 1
    rsu = _one(mscc, Code.REQUESTED_SERVICE_UNIT)
    assert rsu.children == []  # present but empty: the server's default quota
    assert mscc.find(Code.USED_SERVICE_UNIT) is None

    info = _one(msg, Code3gpp.SERVICE_INFORMATION, VENDOR_3GPP)
    assert info.flags & AVP_V
    ims = _one(info, Code3gpp.IMS_INFORMATION, VENDOR_3GPP)
    assert _one(ims, Code3gpp.CALLED_PARTY_ADDRESS, VENDOR_3GPP).as_str() == "tel:+905551112233"
    assert info.find(Code3gpp.PS_INFORMATION, VENDOR_3GPP) is None


def test_voice_update_reports_and_requests_seconds() -> None:
    msg = _ccr(
        request_type=RequestType.UPDATE,
        request_number=3,
        service="voice",
        requested=120,
        used=95,
        destination="4915112345678",
    )
    assert _one(msg, Code.CC_REQUEST_TYPE).as_i32() == RequestType.UPDATE
    assert _one(msg, Code.CC_REQUEST_NUMBER).as_u32() == 3
    mscc = _one(msg, Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    rsu = _one(mscc, Code.REQUESTED_SERVICE_UNIT)
    usu = _one(mscc, Code.USED_SERVICE_UNIT)
    assert [(c.code, c.as_u32()) for c in rsu.children or ()] == [(Code.CC_TIME, 120)]
    assert [(c.code, c.as_u32()) for c in usu.children or ()] == [(Code.CC_TIME, 95)]


def test_data_termination_has_usage_no_rsu_and_ps_information() -> None:
    used = 5 * 2**32 + 7  # needs the 64 bits of CC-Total-Octets
    msg = _ccr(
        request_type=RequestType.TERMINATION,
        request_number=4,
        service="data",
        rating_group=2,
        requested=0,
        used=used,
        mcc_mnc="26201",
        event_timestamp=1_800_000_000,
    )
    assert _one(msg, Code.SERVICE_CONTEXT_ID).as_str() == "32251@3gpp.org"
    assert _one(msg, Code.EVENT_TIMESTAMP).as_time() == 1_800_000_000
    mscc = _one(msg, Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert _one(mscc, Code.RATING_GROUP).as_u32() == 2
    assert mscc.find(Code.REQUESTED_SERVICE_UNIT) is None  # requested=0: no RSU
    usu = _one(mscc, Code.USED_SERVICE_UNIT)
    assert _one(usu, Code.CC_TOTAL_OCTETS).as_u64() == used
    info = _one(msg, Code3gpp.SERVICE_INFORMATION, VENDOR_3GPP)
    ps = _one(info, Code3gpp.PS_INFORMATION, VENDOR_3GPP)
    assert _one(ps, Code3gpp.SGSN_MCC_MNC, VENDOR_3GPP).as_str() == "26201"
    assert info.find(Code3gpp.IMS_INFORMATION, VENDOR_3GPP) is None


def test_sms_event_direct_debiting_with_recipient() -> None:
    msg = _ccr(
        request_type=RequestType.EVENT, service="sms", rating_group=3, requested=1, destination="905551234567"
    )
    assert _one(msg, Code.SERVICE_CONTEXT_ID).as_str() == "32274@3gpp.org"
    assert _one(msg, Code.CC_REQUEST_TYPE).as_i32() == RequestType.EVENT
    assert _one(msg, Code.REQUESTED_ACTION).as_i32() == 0  # DIRECT_DEBITING
    mscc = _one(msg, Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    rsu = _one(mscc, Code.REQUESTED_SERVICE_UNIT)
    assert _one(rsu, Code.CC_SERVICE_SPECIFIC_UNITS).as_u64() == 1
    info = _one(msg, Code3gpp.SERVICE_INFORMATION, VENDOR_3GPP)
    sms = _one(info, Code3gpp.SMS_INFORMATION, VENDOR_3GPP)
    recipient = _one(sms, Code3gpp.RECIPIENT_INFO, VENDOR_3GPP)
    address = _one(recipient, Code3gpp.RECIPIENT_ADDRESS, VENDOR_3GPP)
    assert _one(address, Code3gpp.ADDRESS_DATA, VENDOR_3GPP).as_str() == "905551234567"
    assert _one(address, Code3gpp.ADDRESS_TYPE, VENDOR_3GPP).as_i32() == 1  # MSISDN


def test_without_msisdn_there_is_no_subscription_id() -> None:
    msg = _ccr(msisdn=None, request_type=RequestType.UPDATE, request_number=1, service="data")
    assert msg.find(Code.SUBSCRIPTION_ID) is None


def test_several_rating_groups() -> None:
    msg = _ccr(
        service="voice",  # ignored: `services` says it all
        services=[
            ServiceRequest("data", 2, requested=1_000_000, used=400),
            ServiceRequest("data", 10, requested=None),
            ServiceRequest("data", 11, requested=0, used=9),
        ],
    )
    assert _one(msg, Code.SERVICE_CONTEXT_ID).as_str() == "32251@3gpp.org"
    msccs = msg.find_all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert [_one(m, Code.RATING_GROUP).as_u32() for m in msccs] == [2, 10, 11]
    first, second, third = msccs
    assert _one(_one(first, Code.REQUESTED_SERVICE_UNIT), Code.CC_TOTAL_OCTETS).as_u64() == 1_000_000
    assert _one(_one(first, Code.USED_SERVICE_UNIT), Code.CC_TOTAL_OCTETS).as_u64() == 400
    assert _one(second, Code.REQUESTED_SERVICE_UNIT).children == []
    assert second.find(Code.USED_SERVICE_UNIT) is None
    assert third.find(Code.REQUESTED_SERVICE_UNIT) is None
    assert _one(_one(third, Code.USED_SERVICE_UNIT), Code.CC_TOTAL_OCTETS).as_u64() == 9


def test_one_domain_per_ccr() -> None:
    with pytest.raises(ValueError, match="same domain"):
        _ccr(services=[ServiceRequest("data", 2), ServiceRequest("voice", 1)])
    with pytest.raises(ValueError, match="at least one"):
        _ccr(services=[])


@given(
    service=st.sampled_from(["voice", "data", "sms"]),
    rating_group=st.integers(0, 2**32 - 1),
    requested=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    used=st.integers(0, 2**32 - 1),
    number=st.integers(0, 2**32 - 1),
    msisdn=st.from_regex(r"5[0-9]{9}", fullmatch=True),
)
def test_units_round_trip(
    service: str, rating_group: int, requested: int | None, used: int, number: int, msisdn: str
) -> None:
    msg = _ccr(
        request_type=RequestType.UPDATE,
        request_number=number,
        msisdn=msisdn,
        service=service,
        rating_group=rating_group,
        requested=requested,
        used=used,
        destination="905551112233",
    )
    unit = {"voice": Code.CC_TIME, "data": Code.CC_TOTAL_OCTETS, "sms": Code.CC_SERVICE_SPECIFIC_UNITS}[
        service
    ]

    def amount(group: Avp) -> int:
        avp = _one(group, unit)
        return avp.as_u32() if unit == Code.CC_TIME else avp.as_u64()

    assert _one(msg, Code.CC_REQUEST_NUMBER).as_u32() == number
    assert _one(_one(msg, Code.SUBSCRIPTION_ID), Code.SUBSCRIPTION_ID_DATA).as_str() == "90" + msisdn
    mscc = _one(msg, Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert _one(mscc, Code.RATING_GROUP).as_u32() == rating_group
    rsu = mscc.find(Code.REQUESTED_SERVICE_UNIT)
    if requested is None:
        assert rsu is not None and rsu.children == []
    elif requested == 0:
        assert rsu is None
    else:
        assert rsu is not None and amount(rsu) == requested
    usu = mscc.find(Code.USED_SERVICE_UNIT)
    if used:
        assert usu is not None and amount(usu) == used
    else:
        assert usu is None


# --- CcrTemplate ---------------------------------------------------------------------------------

_LARGEST = {"voice": 2**32 - 1, "data": 2**64 - 1, "sms": 2**64 - 1}  # CC-Time is Unsigned32


@given(
    data=st.data(),
    service=st.sampled_from(["voice", "data", "sms"]),
    kind=st.sampled_from(list(RequestType)),
    number=st.integers(0, 2**32 - 1),
    rating_group=st.integers(0, 2**32 - 1),
    msisdn=st.from_regex(r"5[0-9]{9}", fullmatch=True),
    destination=st.from_regex(r"(9[0-9]{0,14})?", fullmatch=True),
    session_id=st.text(min_size=1, max_size=80),
    stamp=st.none() | st.integers(0, 2**32 - 1 - 2_208_988_800),
    with_doic=st.booleans(),
    ids=st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)),
)
def test_a_template_request_is_build_ccr_byte_for_byte(
    data: st.DataObject,
    service: str,
    kind: RequestType,
    number: int,
    rating_group: int,
    msisdn: str,
    destination: str,
    session_id: str,
    stamp: int | None,
    with_doic: bool,
    ids: tuple[int, int],
) -> None:
    requested = data.draw(st.none() | st.integers(0, _LARGEST[service]))
    used = data.draw(st.integers(0, _LARGEST[service]))
    trailing = [doic.supported()] if with_doic else []
    expected = _ccr(
        session_id=session_id,
        request_type=kind,
        request_number=number,
        msisdn=msisdn,
        service=service,
        rating_group=rating_group,
        requested=requested,
        used=used,
        destination=destination,
        mcc_mnc="26201",
        event_timestamp=stamp,
    )
    expected.avps += trailing
    ccrs = CcrTemplate(ORIGIN, "ocs.realm", trailing).session(
        session_id,
        msisdn,
        service,
        rating_group,
        destination,
        "26201",  # type: ignore[arg-type]
    )
    got = ccrs.request(kind, number, requested, used, stamp)
    assert got.avps == []  # its AVPs are bytes: `encode` is the message
    got.hop_by_hop, got.end_to_end = expected.hop_by_hop, expected.end_to_end = ids
    assert got.encode() == expected.encode()
    assert _wire(got).avps == _wire(expected).avps


def test_a_template_refuses_what_build_ccr_refuses() -> None:
    template = CcrTemplate(ORIGIN, "ocs.realm")
    with pytest.raises(ValueError, match="unknown service"):
        template.session("s;1", "5321234567", "fax", 1)  # type: ignore[arg-type]
    voice = template.session("s;1", "5321234567", "voice", 1)
    for requested, used in ((2**32, 0), (None, 2**32)):  # CC-Time is Unsigned32: not sent
        with pytest.raises(struct.error):
            voice.request(RequestType.UPDATE, 1, requested, used)
        with pytest.raises(struct.error):
            _ccr(request_type=RequestType.UPDATE, request_number=1, requested=requested, used=used).encode()


# --- CCA ------------------------------------------------------------------------------------------


def _cca(avps: list[Avp]) -> Message:
    request = build_ccr(
        session_id="s;1;1",
        origin=ORIGIN,
        destination_realm="ocs.realm",
        request_type=RequestType.UPDATE,
        request_number=2,
        msisdn="5321234567",
    )
    request.hop_by_hop, request.end_to_end = 7, 8
    return _wire(request.answer(avps))


def _g(code: int, children: list[Avp]) -> Avp:
    return Avp.grouped(code, children)


def test_parse_cca_with_grants_validity_and_final_unit() -> None:
    big = 3 * 2**32 + 5
    msg = _cca(
        [
            Avp.utf8(Code.SESSION_ID, "s;1;1"),
            Avp.u32(Code.RESULT_CODE, 2001),
            *LocalPeer("ocs.test", "ocs.realm").identity(),
            Avp.i32(Code.CC_REQUEST_TYPE, 2),
            Avp.u32(Code.CC_REQUEST_NUMBER, 2),
            _g(
                Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                [
                    Avp.u32(Code.RATING_GROUP, 1),
                    _g(Code.GRANTED_SERVICE_UNIT, [Avp.u32(Code.CC_TIME, 300)]),
                    Avp.u32(Code.VALIDITY_TIME, 600),
                    Avp.u32(Code.RESULT_CODE, 2001),
                ],
            ),
            _g(
                Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                [
                    Avp.u32(Code.RATING_GROUP, 2),
                    _g(Code.GRANTED_SERVICE_UNIT, [Avp.u64(Code.CC_TOTAL_OCTETS, big)]),
                    Avp.u32(Code.RESULT_CODE, 2001),
                    _g(Code.FINAL_UNIT_INDICATION, [Avp.i32(Code.FINAL_UNIT_ACTION, 0)]),
                ],
            ),
            _g(
                Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                [Avp.u32(Code.RATING_GROUP, 3), Avp.u32(Code.RESULT_CODE, 4012)],
            ),
            _g(  # no Result-Code of its own: the command's applies
                Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                [
                    Avp.u32(Code.RATING_GROUP, 4),
                    _g(Code.GRANTED_SERVICE_UNIT, [Avp.u64(Code.CC_SERVICE_SPECIFIC_UNITS, 2)]),
                ],
            ),
        ]
    )
    result = parse_cca(msg)
    assert result.session_id == "s;1;1"
    assert (result.result_code, result.request_type, result.request_number) == (2001, 2, 2)
    assert result.ok
    assert [
        (s.rating_group, s.result_code, s.granted, s.validity_time, s.final_unit) for s in result.services
    ] == [
        (1, 2001, 300, 600, False),
        (2, 2001, big, None, True),
        (3, 4012, None, None, False),
        (4, 2001, 2, None, False),
    ]
    assert result.service(3) is result.services[2]
    assert result.service(99) is None


def test_parse_cca_failure_without_msccs() -> None:
    result = parse_cca(
        _cca(
            [
                Avp.utf8(Code.SESSION_ID, "s;1;1"),
                Avp.u32(Code.RESULT_CODE, 5030),
                Avp.i32(Code.CC_REQUEST_TYPE, 1),
            ]
        )
    )
    assert (result.result_code, result.request_type, result.request_number) == (5030, 1, None)
    assert result.services == [] and not result.ok


def test_parse_cca_experimental_result_and_split_octets() -> None:
    result = parse_cca(
        _cca(
            [
                _g(
                    Code.EXPERIMENTAL_RESULT,
                    [Avp.u32(Code.VENDOR_ID, VENDOR_3GPP), Avp.u32(Code.EXPERIMENTAL_RESULT_CODE, 5030)],
                ),
                _g(
                    Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                    [
                        _g(
                            Code.GRANTED_SERVICE_UNIT,
                            [Avp.u64(Code.CC_INPUT_OCTETS, 10), Avp.u64(Code.CC_OUTPUT_OCTETS, 32)],
                        )
                    ],
                ),
            ]
        )
    )
    assert result.result_code == 5030 and result.session_id is None
    [mscc] = result.services
    assert (mscc.rating_group, mscc.result_code, mscc.granted) == (None, 5030, 42)
