"""`read_cca` (the traffic generator's hot path) against the full path it stands in for:
`parse_cca(decode(frame))`. Where it reads an answer it must give the same result; where the full
path raises it must give up. Answers as the gateway builds them (`gy.build_cca`, DOIC's AVPs, error
answers), then the same with bytes flipped, AVPs inserted at any depth and frames cut."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.dgw.gy import build_cca, parse_ccr
from cellcelly.diameter import doic
from cellcelly.diameter.cca_reader import read_cca
from cellcelly.diameter.ccr import CcaResult, ServiceRequest, build_ccr, parse_cca
from cellcelly.diameter.codec import FIXED_SIZES, Avp, DecodeError, decode
from cellcelly.diameter.constants import (
    AVP_M,
    AVP_V,
    FLAG_P,
    FLAG_T,
    VENDOR_3GPP,
    Code,
    Code3gpp,
    RequestType,
    Result,
)
from cellcelly.diameter.peer import LocalPeer, error_answer
from cellcelly.domain.charging import ChargeAnswer, ResultCode, ServiceResult
from diameter_mutations import cut_short, grow, with_a_byte_flipped, with_an_avp_put_in

pytestmark = pytest.mark.unit

CLIENT = LocalPeer("pgw.test", "test.realm")
SERVER = LocalPeer("dgw.test", "cellcelly.local")
KINDS = [RequestType.INITIAL, RequestType.UPDATE, RequestType.TERMINATION, RequestType.EVENT]
CODES = [
    ResultCode.SUCCESS,
    ResultCode.CREDIT_LIMIT_REACHED,
    ResultCode.USER_UNKNOWN,
    ResultCode.RATING_FAILED,
]


def full_path(frame: bytes) -> CcaResult | None:
    """What the generator made of `frame` before the reader, None where that raised."""
    try:
        return parse_cca(decode(frame))
    except (DecodeError, ValueError, struct.error):
        return None


def assert_same(frame: bytes) -> bool:
    """read_cca agrees with the full path on `frame`; whether it read it."""
    fast = read_cca(frame)
    if fast is None:
        return False
    assert fast == full_path(frame), frame.hex()
    return True


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """A CCA as the gateway makes it: one to three services' results, with DOIC's AVPs sometimes,
    P and T flags sometimes."""
    kind = draw(st.sampled_from(KINDS))
    service = draw(st.sampled_from(["voice", "data", "sms"]))
    count = draw(st.integers(1, 3))
    ccr = build_ccr(
        session_id=draw(st.text(min_size=1, max_size=30)),
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=kind,
        request_number=draw(st.integers(0, 2**32 - 1)),
        msisdn="5321234567",
        services=[ServiceRequest(service, rating_group, 10, 0) for rating_group in range(count)],
    )
    req, _ = parse_ccr(ccr)
    results = tuple(
        ServiceResult(
            u.rating_group,
            draw(st.sampled_from(CODES)),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.none() | st.integers(0, 2**32 - 1)),
            False,
            "",
            draw(st.none() | st.integers(0, 2**32 - 1)),
        )
        for u in req.services
    )
    answer = ChargeAnswer(
        req.session_id, req.request_type, req.request_number, draw(st.sampled_from(CODES)), results
    )
    cca = build_cca(ccr, req, answer, SERVER)
    if draw(st.booleans()):
        cca.avps.append(doic.supported())
    cca.hop_by_hop, cca.end_to_end = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    cca.flags |= draw(st.sampled_from([0, FLAG_P, FLAG_T, FLAG_P | FLAG_T]))
    return cca.encode()


odd_avps = st.builds(
    lambda code, flags, vendor, data: Avp(code, flags, vendor, data),
    st.sampled_from(
        [int(c) for c in (Code.RATING_GROUP, Code.SESSION_ID, Code.CC_TIME, Code.RESULT_CODE)]
        + [int(Code.GRANTED_SERVICE_UNIT), int(Code.VALIDITY_TIME), int(Code.CC_INPUT_OCTETS)]
        + [int(Code.CC_OUTPUT_OCTETS), int(Code.CC_REQUEST_TYPE), int(Code.CC_REQUEST_NUMBER)]
        + [int(Code3gpp.QUOTA_HOLDING_TIME), int(Code.EXPERIMENTAL_RESULT), int(Code.OC_OLR), 99_999, 5]
    ),
    st.sampled_from([0, AVP_M, AVP_M | AVP_V, AVP_V]),
    st.sampled_from([0, VENDOR_3GPP, 12_345]),
    st.binary(max_size=12) | st.sampled_from([b"\x00\x00\x00\x07", b"\xff\xfe", b"\x00" * 8]),
)


@given(answers())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_gateways_answers_are_read_as_the_full_path_reads_them(frame: bytes) -> None:
    assert assert_same(frame), "an answer the gateway makes fell back"


@given(with_an_avp_put_in(answers(), odd_avps))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_an_avp_put_anywhere_is_read_as_the_full_path_reads_it(frame: bytes) -> None:
    assert_same(frame)


@given(with_a_byte_flipped(answers()))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_a_flipped_byte_is_read_as_the_full_path_reads_it(frame: bytes) -> None:
    assert_same(frame)


@given(cut_short(answers()))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_a_cut_frame_is_refused(frames: tuple[bytes, bytes | None]) -> None:
    torn, shortened = frames
    assert read_cca(torn) is None
    if shortened is not None:
        assert_same(shortened)


def _cca(*services: ServiceResult, code: ResultCode = ResultCode.SUCCESS) -> bytes:
    ccr = build_ccr(
        session_id="s;1",
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=RequestType.UPDATE,
        request_number=1,
        msisdn="5321234567",
        service="data",
    )
    req, _ = parse_ccr(ccr)
    answer = ChargeAnswer("s;1", req.request_type, 1, code, services)
    msg = build_cca(ccr, req, answer, SERVER)
    return msg.encode()


def test_what_it_does_not_read_it_leaves_to_the_full_path() -> None:
    """An error answer, an overload report, a final unit, an Experimental-Result: the full path."""
    good = _cca(ServiceResult(2, ResultCode.SUCCESS, 1000, 60))
    assert assert_same(good)
    ccr = build_ccr(
        session_id="s;1",
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=RequestType.INITIAL,
        request_number=0,
        msisdn="5321234567",
    )
    error = error_answer(ccr, SERVER, Result.UNABLE_TO_DELIVER, "no OCS").encode()
    report = doic.OverloadReport(1, 50, 10)
    olr = grow(good, len(good), doic.olr(report).encode())
    final = _cca(ServiceResult(2, ResultCode.SUCCESS, 1000, 60, True, "https://top.up"))
    experimental = Avp.grouped(
        Code.EXPERIMENTAL_RESULT,
        [Avp.u32(Code.VENDOR_ID, 10415), Avp.u32(Code.EXPERIMENTAL_RESULT_CODE, 4010)],
    ).encode()
    for frame in (error, olr, final, grow(good, len(good), experimental), good[:-4], good + b"\0\0\0\0"):
        assert read_cca(frame) is None
    assert full_path(olr) == read_cca(good)  # the report is the caller's to read (doic.read_report)
    assert parse_cca(decode(final)).services[0].redirect_url == "https://top.up"
    # an unknown AVP, mandatory or not, and a vendor's, are read past as the full path does
    for avp in (Avp(99_999, AVP_M, 0, b"x"), Avp(99_999, 0, 0, b"x"), Avp(99_999, AVP_M, 12_345, b"x")):
        assert assert_same(grow(good, len(good), avp.encode()))


def test_granted_octets_up_and_down_are_summed_and_quota_holding_time_read() -> None:
    frame = _cca(ServiceResult(7, ResultCode.SUCCESS, 1, 30, quota_holding_time=15))
    read = read_cca(frame)
    assert read is not None and read.services[0].quota_holding_time == 15
    gsu = Avp.grouped(
        Code.GRANTED_SERVICE_UNIT, [Avp.u64(Code.CC_INPUT_OCTETS, 2**40), Avp.u64(Code.CC_OUTPUT_OCTETS, 5)]
    )
    mscc = Avp.grouped(
        Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
        [Avp.u32(Code.RATING_GROUP, 3), gsu, Avp.u32(Code.RESULT_CODE, 2001)],
    )
    summed = grow(frame, len(frame), mscc.encode())
    read = read_cca(summed)
    assert read is not None and read.services[1].granted == 2**40 + 5
    assert assert_same(summed)


def test_the_readers_literal_codes_are_the_dictionarys() -> None:
    from cellcelly.diameter import cca_reader

    checked = 0
    for name, value in vars(cca_reader).items():
        if not (name.startswith("_") and name[1:].isupper() and isinstance(value, int)):
            continue
        member = {"MSCC": "MULTIPLE_SERVICES_CREDIT_CONTROL"}.get(name[1:], name[1:])
        expected = VENDOR_3GPP if member == "VENDOR_3GPP" else getattr(Code, member, None)
        expected = expected if expected is not None else getattr(Code3gpp, member, None)
        assert expected is not None and value == int(expected), name
        checked += 1
    assert checked >= 18
    # the values it reads without checking their size: `check` holds each to the dictionary's
    read = [
        (c, 0) for c in (Code.RESULT_CODE, Code.CC_REQUEST_TYPE, Code.CC_REQUEST_NUMBER, Code.RATING_GROUP)
    ]
    read += [(c, 0) for c in (Code.VALIDITY_TIME, Code.CC_TIME, Code.CC_SERVICE_SPECIFIC_UNITS)]
    read += [(c, 0) for c in (Code.CC_TOTAL_OCTETS, Code.CC_INPUT_OCTETS, Code.CC_OUTPUT_OCTETS)]
    read += [(Code3gpp.QUOTA_HOLDING_TIME, VENDOR_3GPP)]
    assert all(FIXED_SIZES.get((int(code), vendor)) in (4, 8) for code, vendor in read)
