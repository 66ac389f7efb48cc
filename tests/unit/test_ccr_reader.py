"""`read_ccr` (the gateway's hot path) against the full path it stands in for: `decode`, the peer's
UTF-8 check, `_unsupported_mandatory` and `parse_ccr`. Where it reads a CCR it must give the same
request and keep the same AVPs; where the full path answers an error it must give up. Generated
CCRs of every shape the builders make, then the same with bytes flipped, AVPs inserted at any
depth and frames cut."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcelly.dgw.ccr_reader import KEPT, read_ccr
from cellcelly.dgw.gateway import _unsupported_mandatory
from cellcelly.dgw.gy import parse_ccr
from cellcelly.diameter import doic
from cellcelly.diameter.ccr import CcrTemplate, ServiceRequest, build_ccr
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import (
    AVP_M,
    AVP_V,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    RequestType,
)
from cellcelly.diameter.peer import _IDENTITY_AVPS, LocalPeer
from cellcelly.domain.charging import ChargeRequest
from cellcelly.domain.limits import MAX_UNITS
from diameter_mutations import cut_short, grow, with_a_byte_flipped, with_an_avp_put_in

pytestmark = pytest.mark.unit

CLIENT = LocalPeer("pgw.test", "test.realm")
KINDS = [RequestType.INITIAL, RequestType.UPDATE, RequestType.TERMINATION, RequestType.EVENT]


def full_path(frame: bytes) -> tuple[Message, ChargeRequest] | None:
    """What the peer and the gateway make of `frame` without the reader: the message as it waits
    for the OCS and its request, or None when they answer it with an error (or it is no CCR)."""
    try:
        msg = decode(frame)
        if not msg.is_request or msg.code != Cmd.CREDIT_CONTROL or msg.app != 4:
            return None
        for code in _IDENTITY_AVPS:
            avp = msg.find(code)
            if avp is not None:
                avp.as_str()
        if _unsupported_mandatory(msg.avps) is not None:
            return None
        req, _ = parse_ccr(msg)
    except Exception:  # noqa: BLE001 - every refusal: DecodeError, GyError, a value unread
        return None
    msg.keep_only(KEPT)
    return msg, req


def assert_same(frame: bytes) -> bool:
    """read_ccr agrees with the full path on `frame`; whether it read it."""
    fast = read_ccr(frame)
    if fast is None:
        return False
    slow = full_path(frame)
    assert slow is not None, f"read a CCR the full path refuses: {frame.hex()}"
    (msg, req), (want_msg, want_req) = fast, slow
    assert req == want_req
    assert (msg.code, msg.flags, msg.app, msg.hop_by_hop, msg.end_to_end) == (
        want_msg.code,
        want_msg.flags,
        want_msg.app,
        want_msg.hop_by_hop,
        want_msg.end_to_end,
    )
    assert [a.encode() for a in msg.avps] == [a.encode() for a in want_msg.avps]
    assert [a.children is None for a in msg.avps] == [a.children is None for a in want_msg.avps]
    return True


def _frame(msg: Message, hbh: int = 7, e2e: int = 9, flags: int = FLAG_R) -> bytes:
    msg.hop_by_hop, msg.end_to_end, msg.flags = hbh, e2e, flags
    return msg.encode()


def _data_ccr(session_id: str, kind: RequestType = RequestType.INITIAL, mcc_mnc: str = "26201") -> Message:
    """A data session's CCR of the demo subscriber, visiting `mcc_mnc` (26201: Germany, "49")."""
    return build_ccr(
        session_id=session_id,
        origin=CLIENT,
        destination_realm="cellcelly.local",
        request_type=kind,
        request_number=0 if kind is RequestType.INITIAL else 1,
        msisdn="5321234567",
        service="data",
        mcc_mnc=mcc_mnc,
    )


services = st.sampled_from(["voice", "data", "sms"])
rating_groups = st.integers(0, 2**32 - 1)
amounts = st.one_of(st.none(), st.integers(0, 2**32 - 1))
msisdns = st.sampled_from(["5321234567", "5000000001", "5550000000"])
destinations = st.sampled_from(["", "905551234567", "491511234567", "sip:+4930123@ims"])


@st.composite
def ccrs(draw: st.DrawFn) -> bytes:
    """A CCR as `build_ccr` or the traffic generator's template makes it, with Proxy-Info and
    OC-Supported-Features sometimes, P and T flags sometimes."""
    kind = draw(st.sampled_from(KINDS))
    service = draw(services)
    number = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        template = CcrTemplate(CLIENT, "cellcelly.local", [doic.supported()] if draw(st.booleans()) else [])
        session = template.session(
            draw(st.text(alphabet="abc;.0123456789", min_size=1, max_size=40)),
            draw(msisdns),
            service,
            draw(st.integers(0, 2**32 - 1)),
            draw(destinations),
            draw(st.sampled_from(["28601", "26201", "99999", "2"])),
        )
        used = draw(st.integers(0, 2**31))
        msg: Message = session.request(
            kind, number, draw(amounts), used, draw(st.none() | st.integers(0, 2**31))
        )
    else:
        count = draw(st.integers(1, 3))
        requests = [
            ServiceRequest(
                service, draw(st.integers(0, 2**32 - 1)), draw(amounts), draw(st.integers(0, 2**31))
            )
            for _ in range(count)
        ]
        msg = build_ccr(
            session_id=draw(st.text(min_size=1, max_size=30)),
            origin=CLIENT,
            destination_realm="cellcelly.local",
            request_type=kind,
            request_number=number,
            msisdn=draw(st.none() | msisdns),
            services=requests,
            mcc_mnc=draw(st.sampled_from(["28601", "20801", "310260"])),
            event_timestamp=draw(st.none() | st.integers(0, 2**31)),
        )
    extra = []
    if draw(st.booleans()):
        extra.append(
            Avp.grouped(
                Code.PROXY_INFO,
                [Avp.utf8(Code.PROXY_HOST, "relay.test"), Avp.octets(Code.PROXY_STATE, b"\x01\x02")],
            )
        )
    if draw(st.booleans()):
        extra.append(doic.supported())
    flags = FLAG_R | draw(st.sampled_from([0, FLAG_P, FLAG_T, FLAG_P | FLAG_T]))
    frame = _frame(msg, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), flags)
    if extra:
        frame = grow(frame, len(frame), b"".join(a.encode() for a in extra))
    return frame


odd_avps = st.builds(
    lambda code, flags, vendor, data: Avp(code, flags, vendor, data),
    st.sampled_from(
        [int(c) for c in (Code.RATING_GROUP, Code.SESSION_ID, Code.CC_TIME, Code.SUBSCRIPTION_ID_DATA)]
        + [int(Code.CALLED_STATION_ID), int(Code.SERVICE_CONTEXT_ID), int(Code.REQUESTED_SERVICE_UNIT)]
        + [int(Code3gpp.SGSN_MCC_MNC), int(Code3gpp.USER_LOCATION_INFO), int(Code3gpp.CALLED_PARTY_ADDRESS)]
        + [int(Code.FAILED_AVP), int(Code.CC_REQUEST_TYPE), int(Code.SUBSCRIPTION_ID_TYPE), 99_999, 5]
    ),
    st.sampled_from([0, AVP_M, AVP_M | AVP_V, AVP_V]),
    st.sampled_from([0, VENDOR_3GPP, 12_345]),
    st.binary(max_size=12) | st.sampled_from([b"\xff\xfe", b"26201", b"\x00\x62\xf2\x10", b"tel:+4915"]),
)


@given(ccrs())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_builders_ccrs_are_read_as_the_full_path_reads_them(frame: bytes) -> None:
    read = assert_same(frame)
    if full_path(frame) is not None:
        assert read, "a CCR the full path charges fell back"


@given(with_an_avp_put_in(ccrs(), odd_avps))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_an_avp_put_anywhere_is_read_as_the_full_path_reads_it(frame: bytes) -> None:
    assert_same(frame)


@given(with_a_byte_flipped(ccrs()))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_a_flipped_byte_is_read_as_the_full_path_reads_it(frame: bytes) -> None:
    assert_same(frame)


@given(cut_short(ccrs()))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_a_cut_frame_is_refused(frames: tuple[bytes, bytes | None]) -> None:
    torn, shortened = frames
    assert read_ccr(torn) is None
    if shortened is not None:
        assert_same(shortened)


def test_what_it_does_not_read_it_leaves_to_the_full_path() -> None:
    good = _frame(
        build_ccr(
            session_id="s;1",
            origin=CLIENT,
            destination_realm="cellcelly.local",
            request_type=RequestType.INITIAL,
            request_number=0,
            msisdn="5321234567",
        )
    )
    assert assert_same(good)
    answer = bytearray(good)
    answer[4] &= ~FLAG_R & 0xFF
    watchdog = bytearray(good)
    watchdog[5:8] = int(Cmd.DEVICE_WATCHDOG).to_bytes(3, "big")
    other_app = bytearray(good)
    other_app[8:12] = (16777238).to_bytes(4, "big")
    unknown_mandatory = grow(good, len(good), Avp(99_999, AVP_M, 0, b"x").encode())
    for frame in (bytes(answer), bytes(watchdog), bytes(other_app), unknown_mandatory):
        assert read_ccr(frame) is None
    # an unknown AVP without the M bit, and a vendor's, are read past as the full path does
    assert assert_same(grow(good, len(good), Avp(99_999, 0, 0, b"x").encode()))
    assert assert_same(grow(good, len(good), Avp(99_999, AVP_M, 12_345, b"x").encode()))


def test_a_ccr_is_read_with_its_location_and_called_number_in_depth_first_order() -> None:
    msg = _data_ccr("s;2")
    frame = _frame(msg)
    read = read_ccr(frame)
    assert read is not None and read[1].location == "49"
    assert assert_same(frame)


@pytest.mark.parametrize("two_reports", [True, False])
def test_units_summed_past_what_a_record_holds_are_left_to_the_full_path(two_reports: bool) -> None:
    """Each Used-Service-Unit (or each of input and output octets) fits; their sum does not."""
    half = MAX_UNITS // 2 + 1
    if two_reports:
        usus = [Avp.grouped(Code.USED_SERVICE_UNIT, [Avp.u64(Code.CC_TOTAL_OCTETS, half)]) for _ in range(2)]
    else:
        octets = [Avp.u64(Code.CC_INPUT_OCTETS, half), Avp.u64(Code.CC_OUTPUT_OCTETS, half)]
        usus = [Avp.grouped(Code.USED_SERVICE_UNIT, octets)]
    rating_group = Avp.u32(Code.RATING_GROUP, 2)
    mscc = Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [rating_group, *usus])
    msg = _data_ccr("s;3", RequestType.UPDATE, "28601")
    msg.avps = [a for a in msg.avps if a.code != Code.MULTIPLE_SERVICES_CREDIT_CONTROL] + [mscc]
    frame = _frame(msg)
    assert full_path(frame) is None
    assert read_ccr(frame) is None
    mscc.children = [rating_group, usus[0]] if two_reports else [rating_group]
    assert assert_same(_frame(msg))


def test_the_readers_literal_codes_are_the_dictionarys() -> None:
    from cellcelly.dgw import ccr_reader

    codes = {
        name: value for name, value in vars(ccr_reader).items() if name.startswith("_") and name[1:].isupper()
    }
    checked = 0
    for name, value in codes.items():
        if not isinstance(value, int):
            continue
        member = name[1:]
        if member == "MSCC":
            member = "MULTIPLE_SERVICES_CREDIT_CONTROL"
        expected = getattr(Code, member, None) or getattr(Code3gpp, member, None)
        if member == "VENDOR_3GPP":
            expected = VENDOR_3GPP
        assert expected is not None, name
        assert value == int(expected), name
        checked += 1
    assert checked >= 29


@pytest.mark.parametrize(
    ("uli", "location"),
    [(b"\x00\x99\xf9", "49"), (b"\x00\x62\xf2\x10", "49"), (b"\x00\x99\xf9\x10", "mcc999")],
)
def test_a_user_location_info_too_short_for_an_mcc_is_passed_over(uli: bytes, location: str) -> None:
    """A 3GPP-User-Location-Info before the data session's SGSN-MCC-MNC (26201): read when it
    has the four bytes an MCC needs, passed over when shorter, as `gy._where` does."""
    msg = _data_ccr("s;4")
    msg.avps.insert(0, Avp.octets(Code3gpp.USER_LOCATION_INFO, uli, VENDOR_3GPP))
    frame = _frame(msg)
    assert assert_same(frame)
    read = read_ccr(frame)
    assert read is not None and read[1].location == location
