"""The Diameter codec (RFC 6733 base, RFC 8506 credit control, 3GPP TS 32.299 AVPs): bytes on the
wire, round trips, grouped AVPs, answers, and every way a message is refused (with the Result-Code
and, where RFC 6733 7.1.5 wants one, the AVP for Failed-AVP)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.diameter.codec import (
    _FIXED,
    DICTIONARY,
    MAX_DEPTH,
    NTP_OFFSET,
    Avp,
    DecodeError,
    Message,
    Type,
    decode,
    decode_header,
    message_length,
)
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    APP_RELAY,
    AVP_M,
    AVP_P,
    AVP_V,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
    Result,
)

pytestmark = pytest.mark.unit

V3 = VENDOR_3GPP


def _g(code: int, children: list[Avp], vendor: int = 0) -> Avp:
    return Avp.grouped(code, children, vendor=vendor)


def _mscc(rating_group: int, used_seconds: int, used_octets: int) -> Avp:
    return _g(
        Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
        [
            _g(
                Code.REQUESTED_SERVICE_UNIT,
                [Avp.u32(Code.CC_TIME, 600), Avp.u64(Code.CC_TOTAL_OCTETS, 10 << 20)],
            ),
            _g(
                Code.USED_SERVICE_UNIT,
                [
                    Avp.u32(Code.CC_TIME, used_seconds),
                    Avp.u64(Code.CC_TOTAL_OCTETS, used_octets),
                    Avp.u64(Code.CC_INPUT_OCTETS, used_octets // 4),
                    Avp.u64(Code.CC_OUTPUT_OCTETS, used_octets - used_octets // 4),
                    Avp.i32(Code3gpp.REPORTING_REASON, 2, vendor=V3),  # QUOTA_EXHAUSTED
                ],
            ),
            Avp.u32(Code.RATING_GROUP, rating_group),
        ],
    )


def ccr(request_type: int = 2, number: int = 1, avps: list[Avp] | None = None) -> Message:
    """A realistic Gy CCR (data, two MSCCs) with PS-Information."""
    return Message(
        Cmd.CREDIT_CONTROL,
        FLAG_R | FLAG_P,
        APP_CREDIT_CONTROL,
        0x1234ABCD,
        0xFEDC0001,
        [
            Avp.utf8(Code.SESSION_ID, "pgw1.example.net;1700000000;42"),
            Avp.utf8(Code.ORIGIN_HOST, "pgw1.example.net"),
            Avp.utf8(Code.ORIGIN_REALM, "example.net"),
            Avp.utf8(Code.DESTINATION_REALM, "ocs.example.net"),
            Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
            Avp.utf8(Code.SERVICE_CONTEXT_ID, "32251@3gpp.org"),
            Avp.i32(Code.CC_REQUEST_TYPE, request_type),
            Avp.u32(Code.CC_REQUEST_NUMBER, number),
            Avp.time(Code.EVENT_TIMESTAMP, 1_700_000_000),
            _g(
                Code.SUBSCRIPTION_ID,
                [Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0), Avp.utf8(Code.SUBSCRIPTION_ID_DATA, "905321234567")],
            ),
            _g(
                Code.SUBSCRIPTION_ID,
                [
                    Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 1),
                    Avp.utf8(Code.SUBSCRIPTION_ID_DATA, "286011234567890"),
                ],
            ),
            Avp.i32(Code.MULTIPLE_SERVICES_INDICATOR, 1),
            _mscc(10, 55, 1_234_567),
            _mscc(20, 0, 5_000_000_000),  # needs 64 bits
            _g(
                Code3gpp.SERVICE_INFORMATION,
                [
                    _g(
                        Code3gpp.PS_INFORMATION,
                        [
                            Avp.u32(Code3gpp.CHARGING_ID, 0xDEADBEEF, vendor=V3),
                            Avp.utf8(Code3gpp.SGSN_MCC_MNC, "28601", vendor=V3),
                            Avp.octets(Code3gpp.RAT_TYPE, b"\x06", vendor=V3),
                            Avp.octets(Code3gpp.MS_TIMEZONE, b"\x40\x00", vendor=V3),
                        ],
                        vendor=V3,
                    )
                ],
                vendor=V3,
            ),
            *(avps or []),
        ],
    )


# --- bytes on the wire --------------------------------------------------------------------------


def test_header_bytes() -> None:
    msg = Message(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P, APP_CREDIT_CONTROL, 0x11223344, 0x55667788)
    assert msg.encode() == bytes.fromhex("01000014 c0000110 00000004 11223344 55667788")
    assert message_length(msg.encode()) == 20


@pytest.mark.parametrize(
    "flags",
    [0, FLAG_R, FLAG_P, FLAG_R | FLAG_P, FLAG_R | FLAG_T, FLAG_E, FLAG_P | FLAG_E, FLAG_R | FLAG_P | FLAG_T],
)
@pytest.mark.parametrize(
    ("code", "app", "hbh", "e2e"),
    [(257, 0, 0, 0), (272, 4, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFF, APP_RELAY, 1, 0x80000000)],
)
def test_header_round_trip(flags: int, code: int, app: int, hbh: int, e2e: int) -> None:
    raw = Message(code, flags, app, hbh, e2e, [Avp.u32(Code.ORIGIN_STATE_ID, 7)]).encode()
    assert raw[4] == flags and int.from_bytes(raw[5:8], "big") == code
    back = decode(raw)
    assert (back.code, back.flags, back.app, back.hop_by_hop, back.end_to_end) == (code, flags, app, hbh, e2e)
    assert back.is_request == bool(flags & FLAG_R)
    assert back.is_error == bool(flags & FLAG_E)
    assert back.is_retransmission == bool(flags & FLAG_T)
    assert back.encode() == raw
    head = decode_header(raw[:20])
    assert (head.code, head.flags, head.hop_by_hop, head.avps) == (code, flags, hbh, [])


def test_avp_bytes() -> None:
    assert Avp.u32(Code.RESULT_CODE, 2001).encode() == bytes.fromhex("0000010c 4000000c 000007d1")
    assert Avp.u32(Code.RESULT_CODE, 2001, mandatory=False).encode()[4] == 0
    # vendor-specific: V bit, 12-byte header, length 17 (without padding), 3 bytes of zero padding
    assert Avp.utf8(Code3gpp.SGSN_MCC_MNC, "28601", vendor=V3).encode() == bytes.fromhex(
        "00000012 c0000011 000028af 3238363031 000000"
    )
    assert Avp.u64(Code.CC_TOTAL_OCTETS, 2**40).encode() == bytes.fromhex(
        "000001a5 40000010 0000010000000000"
    )
    assert Avp.i32(Code.EXPONENT, -2).encode() == bytes.fromhex("000001ad 4000000c fffffffe")
    assert Avp.address(Code.HOST_IP_ADDRESS, "10.1.2.3").encode() == bytes.fromhex(
        "00000101 4000000e 0001 0a010203 0000"
    )


@pytest.mark.parametrize("size", range(0, 9))
def test_padding(size: int) -> None:
    avp = Avp.octets(Code.PROXY_STATE, bytes(range(1, size + 1)))
    raw = avp.encode()
    assert int.from_bytes(raw[5:8], "big") == 8 + size  # the length excludes the padding
    assert len(raw) == 8 + size + (-size % 4)
    assert raw[8 + size :] == b"\x00" * (-size % 4)
    msg = Message(257, FLAG_R, 0, 1, 2, [avp, Avp.u32(Code.ORIGIN_STATE_ID, 9)])
    back = decode(msg.encode())
    assert back.avps[0].data == bytes(range(1, size + 1))
    assert back.avps[1].as_u32() == 9  # the next AVP starts after the padding
    assert message_length(msg.encode()) == len(msg.encode()) == 20 + len(raw) + 12


def test_vendor_avps() -> None:
    avp = Avp.u32(Code3gpp.QUOTA_HOLDING_TIME, 30, vendor=V3)
    assert avp.flags == AVP_V | AVP_M and avp.vendor == V3
    back = decode(Message(272, FLAG_R, 4, 1, 1, [avp]).encode()).avps[0]
    assert (back.code, back.vendor, back.flags, back.as_u32()) == (871, V3, AVP_V | AVP_M, 30)
    assert back.name == "Quota-Holding-Time"
    # the same code without a vendor is another AVP (here unknown); a vendor of 0 clears the V bit
    plain = Avp.u32(Code3gpp.QUOTA_HOLDING_TIME, 30)
    assert plain.flags == AVP_M and len(plain.encode()) == 12
    assert decode(Message(272, FLAG_R, 4, 1, 1, [plain]).encode()).avps[0].name == "AVP-871"


@pytest.mark.parametrize("vendor", [1, V3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_vendor_ids_are_unsigned32(vendor: int) -> None:
    avp = Avp.octets(1, b"x", vendor=vendor)
    assert avp.encode()[8:12] == vendor.to_bytes(4, "big")
    back = decode(Message(272, FLAG_R, 4, 1, 1, [avp]).encode()).avps[0]
    assert back.vendor == vendor and back.data == b"x"


# --- every AVP type, and every AVP of the dictionary -------------------------------------------


def _sample(code: int, vendor: int, kind: Type) -> tuple[Avp, object]:
    """An AVP of this dictionary entry and the value `value()` must give back."""
    if kind is Type.U32:
        return Avp.u32(code, 0xFFFFFFFE, vendor), 0xFFFFFFFE
    if kind is Type.U64:
        return Avp.u64(code, 2**64 - 2, vendor), 2**64 - 2
    if kind in (Type.I32, Type.ENUM):
        return Avp.i32(code, -(2**31), vendor), -(2**31)
    if kind is Type.I64:
        return Avp.i64(code, -(2**63) + 1, vendor), -(2**63) + 1
    if kind in (Type.UTF8, Type.IDENTITY):
        return Avp.utf8(code, "çağrı-ş.example", vendor), "çağrı-ş.example"
    if kind is Type.OCTETS:
        return Avp.octets(code, b"\x00\xff\x10", vendor), b"\x00\xff\x10"
    if kind is Type.ADDRESS:
        return Avp.address(code, "2001:db8::1", vendor), "2001:db8::1"
    if kind is Type.TIME:
        return Avp.time(code, 1_700_000_000, vendor), 1_700_000_000
    if kind is Type.GROUPED:
        child = Avp.u32(Code.RATING_GROUP, 5)
        return Avp.grouped(code, [child], vendor), [("Rating-Group", 5)]
    raise AssertionError(kind)


@pytest.mark.parametrize(("key", "entry"), sorted(DICTIONARY.items()), ids=lambda v: str(v))
def test_every_dictionary_avp_round_trips(key: tuple[int, int], entry: tuple[str, Type]) -> None:
    (code, vendor), (name, kind) = key, entry
    avp, expected = _sample(code, vendor, kind)
    raw = Message(272, FLAG_R, 4, 1, 2, [avp]).encode()
    back = decode(raw).avps[0]
    assert (back.code, back.vendor, back.name) == (code, vendor, name)
    assert back.value() == expected
    assert back == avp and back.encode() == avp.encode()
    if kind in _FIXED:
        assert len(back.data) == _FIXED[kind]
    assert (back.children is not None) == (kind is Type.GROUPED)


@pytest.mark.parametrize(
    ("avp", "read", "value"),
    [
        (Avp.u32(1, 0), Avp.as_u32, 0),
        (Avp.u32(1, 2**32 - 1), Avp.as_u32, 2**32 - 1),
        (Avp.u64(1, 2**64 - 1), Avp.as_u64, 2**64 - 1),
        (Avp.i32(1, -1), Avp.as_i32, -1),
        (Avp.i32(1, 2**31 - 1), Avp.as_i32, 2**31 - 1),
        (Avp.i64(1, -(2**63)), Avp.as_i64, -(2**63)),
        (Avp.utf8(1, ""), Avp.as_str, ""),
        (Avp.utf8(1, "905321234567"), Avp.as_str, "905321234567"),
        (Avp.utf8(1, "İstanbul 🇹🇷"), Avp.as_str, "İstanbul 🇹🇷"),
        (Avp.address(1, "192.0.2.1"), Avp.as_address, "192.0.2.1"),
        (Avp.address(1, "::ffff:192.0.2.1"), Avp.as_address, "::ffff:192.0.2.1"),
        (Avp.time(1, 0), Avp.as_time, 0),
        (Avp.time(1, 1_700_000_000), Avp.as_time, 1_700_000_000),
        # from 2036-02-07 06:28:16 UTC the NTP seconds wrap into era 1 (RFC 4330, RFC 6733 4.3.1)
        (Avp.time(1, 2_085_978_495), Avp.as_time, 2_085_978_495),
        (Avp.time(1, 2_085_978_496), Avp.as_time, 2_085_978_496),
        (Avp.time(1, 4_000_000_000), Avp.as_time, 4_000_000_000),
        (Avp.time(1, -60), Avp.as_time, -60),
    ],
)
def test_every_type_round_trips(avp: Avp, read: object, value: object) -> None:
    back = decode(Message(257, FLAG_R, 0, 1, 1, [avp]).encode()).avps[0]
    assert read(back) == value  # type: ignore[operator]
    assert back.data == avp.data


def test_time_bytes() -> None:
    assert Avp.time(Code.EVENT_TIMESTAMP, 0).data == NTP_OFFSET.to_bytes(4, "big")  # 0x83AA7E80
    assert Avp.time(Code.EVENT_TIMESTAMP, 2_085_978_496).data == b"\x00\x00\x00\x00"  # era 1 begins


def test_invalid_values_are_5004() -> None:
    with pytest.raises(DecodeError) as bad_utf8:
        Avp.octets(Code.SESSION_ID, b"\xff\xfe").as_str()
    assert bad_utf8.value.result is Result.INVALID_AVP_VALUE and bad_utf8.value.failed is not None
    with pytest.raises(DecodeError) as bad_family:
        Avp.octets(Code.HOST_IP_ADDRESS, b"\x00\x08905321234567").as_address()
    assert bad_family.value.result is Result.INVALID_AVP_VALUE


def test_names() -> None:
    assert Avp.grouped(Code.FAILED_AVP, []).name == "Failed-AVP"
    assert Avp.octets(Code3gpp.MS_TIMEZONE, b"", vendor=V3).name == "3GPP-MS-TimeZone"
    assert Avp.utf8(Code3gpp.SGSN_MCC_MNC, "", vendor=V3).name == "3GPP-SGSN-MCC-MNC"
    assert Avp.u32(Code.CC_REQUEST_NUMBER, 0).name == "CC-Request-Number"
    assert Avp.grouped(Code.G_S_U_POOL_REFERENCE, []).name == "G-S-U-Pool-Reference"
    assert Avp.octets(99_999, b"").name == "AVP-99999"
    assert Avp.octets(99_999, b"", vendor=7).name == "AVP-99999/7"


# --- grouped AVPs -------------------------------------------------------------------------------


def test_ccr_with_nested_grouped_avps_round_trips() -> None:
    msg = ccr()
    raw = msg.encode()
    assert len(raw) % 4 == 0 and message_length(raw) == len(raw)
    back = decode(raw)
    assert back.encode() == raw
    assert back.session_id == "pgw1.example.net;1700000000;42"
    assert back.find(Code.CC_REQUEST_TYPE).as_i32() == 2  # type: ignore[union-attr]
    assert back.find(Code.EVENT_TIMESTAMP).as_time() == 1_700_000_000  # type: ignore[union-attr]

    subs = back.find_all(Code.SUBSCRIPTION_ID)
    assert [
        (s.find(Code.SUBSCRIPTION_ID_TYPE).as_i32(), s.find(Code.SUBSCRIPTION_ID_DATA).as_str()) for s in subs
    ] == [  # type: ignore[union-attr]
        (0, "905321234567"),
        (1, "286011234567890"),
    ]

    msccs = back.find_all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert [m.find(Code.RATING_GROUP).as_u32() for m in msccs] == [10, 20]  # type: ignore[union-attr]
    used = msccs[1].find(Code.USED_SERVICE_UNIT)
    assert used is not None
    assert used.find(Code.CC_TOTAL_OCTETS).as_u64() == 5_000_000_000  # type: ignore[union-attr]
    assert used.find(Code3gpp.REPORTING_REASON) is None  # vendor matters
    assert used.find(Code3gpp.REPORTING_REASON, V3).as_i32() == 2  # type: ignore[union-attr]
    rsu = msccs[0].find(Code.REQUESTED_SERVICE_UNIT)
    assert rsu is not None and rsu.value() == [("CC-Time", 600), ("CC-Total-Octets", 10 << 20)]

    si = back.find(Code3gpp.SERVICE_INFORMATION, V3)
    assert si is not None and si.flags == AVP_V | AVP_M
    ps = si.find(Code3gpp.PS_INFORMATION, V3)
    assert ps is not None
    assert ps.find(Code3gpp.SGSN_MCC_MNC, V3).as_str() == "28601"  # type: ignore[union-attr]
    assert ps.find(Code3gpp.CHARGING_ID, V3).as_u32() == 0xDEADBEEF  # type: ignore[union-attr]
    assert ps.find_all(Code3gpp.RAT_TYPE, V3)[0].data == b"\x06"

    names = [a.name for a in back.walk()]
    assert names[:4] == ["Session-Id", "Origin-Host", "Origin-Realm", "Destination-Realm"]
    # depth first, in wire order
    i = names.index("Multiple-Services-Credit-Control")
    assert names[i : i + 5] == [
        "Multiple-Services-Credit-Control",
        "Requested-Service-Unit",
        "CC-Time",
        "CC-Total-Octets",
        "Used-Service-Unit",
    ]
    assert names[-5:] == [
        "PS-Information",
        "3GPP-Charging-Id",
        "3GPP-SGSN-MCC-MNC",
        "3GPP-RAT-Type",
        "3GPP-MS-TimeZone",
    ]


def test_cca_with_gsu_and_final_unit_indication() -> None:
    request = ccr()
    fui = _g(
        Code.FINAL_UNIT_INDICATION,
        [
            Avp.i32(Code.FINAL_UNIT_ACTION, 1),  # REDIRECT
            _g(
                Code.REDIRECT_SERVER,
                [
                    Avp.i32(Code.REDIRECT_ADDRESS_TYPE, 2),
                    Avp.utf8(Code.REDIRECT_SERVER_ADDRESS, "http://top.up/"),
                ],
            ),
        ],
    )
    mscc = _g(
        Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
        [
            _g(
                Code.GRANTED_SERVICE_UNIT,
                [Avp.u32(Code.CC_TIME, 300), Avp.u64(Code.CC_TOTAL_OCTETS, 1 << 30)],
            ),
            Avp.u32(Code.RATING_GROUP, 10),
            Avp.u32(Code.VALIDITY_TIME, 3600),
            Avp.u32(Code.RESULT_CODE, Result.SUCCESS),
            fui,
            Avp.u32(Code3gpp.VOLUME_QUOTA_THRESHOLD, 1 << 20, vendor=V3),
        ],
    )
    answer = request.answer(
        [
            Avp.utf8(Code.SESSION_ID, request.session_id or ""),
            Avp.u32(Code.RESULT_CODE, Result.SUCCESS),
            Avp.utf8(Code.ORIGIN_HOST, "ocs.example.net"),
            Avp.utf8(Code.ORIGIN_REALM, "example.net"),
            Avp.u32(Code.AUTH_APPLICATION_ID, 4),
            Avp.i32(Code.CC_REQUEST_TYPE, 2),
            Avp.u32(Code.CC_REQUEST_NUMBER, 1),
            mscc,
        ]
    )
    raw = answer.encode()
    back = decode(raw)
    assert back.encode() == raw
    assert not back.is_request and back.result_code == 2001
    got = back.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert got is not None
    gsu = got.find(Code.GRANTED_SERVICE_UNIT)
    assert gsu is not None and gsu.find(Code.CC_TOTAL_OCTETS).as_u64() == 1 << 30  # type: ignore[union-attr]
    assert got.find(Code.VALIDITY_TIME).as_u32() == 3600  # type: ignore[union-attr]
    assert got.find(Code.RESULT_CODE).as_u32() == 2001  # type: ignore[union-attr]
    fui_back = got.find(Code.FINAL_UNIT_INDICATION)
    assert fui_back is not None and fui_back.value() == [
        ("Final-Unit-Action", 1),
        ("Redirect-Server", [("Redirect-Address-Type", 2), ("Redirect-Server-Address", "http://top.up/")]),
    ]


def test_sms_and_ims_information() -> None:
    recipient = _g(
        Code3gpp.RECIPIENT_INFO,
        [
            _g(
                Code3gpp.RECIPIENT_ADDRESS,
                [
                    Avp.i32(Code3gpp.ADDRESS_TYPE, 1, vendor=V3),
                    Avp.utf8(Code3gpp.ADDRESS_DATA, "905551112233", vendor=V3),
                ],
                vendor=V3,
            )
        ],
        vendor=V3,
    )
    sms = _g(
        Code3gpp.SMS_INFORMATION,
        [
            Avp.i32(Code3gpp.DATA_CODING_SCHEME, 8, vendor=V3),
            Avp.i32(Code3gpp.SMS_NODE, 0, vendor=V3),
            _g(
                Code3gpp.ORIGINATOR_ADDRESS,
                [
                    Avp.i32(Code3gpp.ADDRESS_TYPE, 1, vendor=V3),
                    Avp.utf8(Code3gpp.ADDRESS_DATA, "905321234567", vendor=V3),
                ],
                vendor=V3,
            ),
            recipient,
        ],
        vendor=V3,
    )
    ims = _g(
        Code3gpp.IMS_INFORMATION,
        [
            _g(Code3gpp.EVENT_TYPE, [Avp.utf8(Code3gpp.SIP_METHOD, "INVITE", vendor=V3)], vendor=V3),
            Avp.i32(Code3gpp.ROLE_OF_NODE, 0, vendor=V3),
            Avp.i32(Code3gpp.NODE_FUNCTIONALITY, 6, vendor=V3),
            Avp.utf8(Code3gpp.CALLING_PARTY_ADDRESS, "tel:+905321234567", vendor=V3),
            Avp.utf8(Code3gpp.CALLED_PARTY_ADDRESS, "tel:+905551112233", vendor=V3),
        ],
        vendor=V3,
    )
    msg = Message(
        272,
        FLAG_R | FLAG_P,
        4,
        7,
        8,
        [Avp.utf8(Code.SESSION_ID, "s"), _g(Code3gpp.SERVICE_INFORMATION, [sms, ims], vendor=V3)],
    )
    back = decode(msg.encode())
    assert back.encode() == msg.encode()
    si = back.find(Code3gpp.SERVICE_INFORMATION, V3)
    assert si is not None
    sms_back = si.find(Code3gpp.SMS_INFORMATION, V3)
    assert sms_back is not None
    address = (
        sms_back.find(Code3gpp.RECIPIENT_INFO, V3)
        .find(Code3gpp.RECIPIENT_ADDRESS, V3)
        .find(Code3gpp.ADDRESS_DATA, V3)  # type: ignore[union-attr]
    )
    assert address is not None and address.as_str() == "905551112233"
    assert sms_back.find(Code3gpp.DATA_CODING_SCHEME, V3).as_i32() == 8  # type: ignore[union-attr]
    ims_back = si.find(Code3gpp.IMS_INFORMATION, V3)
    assert ims_back is not None
    assert ims_back.find(Code3gpp.CALLED_PARTY_ADDRESS, V3).as_str() == "tel:+905551112233"  # type: ignore[union-attr]
    assert ims_back.find(Code3gpp.EVENT_TYPE, V3).value() == [("SIP-Method", "INVITE")]  # type: ignore[union-attr]
    assert [a.name for a in back.walk()].count("Address-Data") == 2


def test_deeply_nested_and_empty_grouped() -> None:
    """Grouped AVPs decode as deep as the codec's limit (MAX_DEPTH levels of Grouped AVPs, the
    innermost here empty); one level more is refused (tests/unit/test_diameter_fuzz.py)."""
    inner: Avp = Avp.grouped(Code.SUBSCRIPTION_ID, [])
    for _ in range(MAX_DEPTH - 1):
        inner = Avp.grouped(Code.PROXY_INFO, [inner, Avp.octets(Code.PROXY_STATE, b"st")])
    raw = Message(257, FLAG_R, 0, 1, 1, [inner]).encode()
    back = decode(raw)
    assert back.encode() == raw
    assert sum(1 for a in back.walk() if a.code == Code.PROXY_INFO) == MAX_DEPTH - 1
    assert [a for a in back.walk() if a.code == Code.SUBSCRIPTION_ID][0].children == []
    with pytest.raises(DecodeError) as refused:
        decode(Message(257, FLAG_R, 0, 1, 1, [Avp.grouped(Code.PROXY_INFO, [inner])]).encode())
    assert refused.value.result == Result.INVALID_AVP_VALUE


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [FLAG_R, FLAG_R | FLAG_P, FLAG_R | FLAG_P | FLAG_T, FLAG_R | FLAG_T])
def test_answer(flags: int) -> None:
    request = Message(Cmd.CREDIT_CONTROL, flags, 4, 0xAAAA5555, 0x12345678, [Avp.utf8(Code.SESSION_ID, "s")])
    ok = request.answer([Avp.u32(Code.RESULT_CODE, 2001)])
    assert (ok.code, ok.app, ok.hop_by_hop, ok.end_to_end) == (272, 4, 0xAAAA5555, 0x12345678)
    assert ok.flags == flags & FLAG_P  # R and T cleared, P kept
    assert not ok.is_request and not ok.is_error and ok.result_code == 2001
    err = request.answer([Avp.u32(Code.RESULT_CODE, Result.INVALID_HDR_BITS)], error=True)
    assert err.flags == (flags & FLAG_P) | FLAG_E and err.is_error
    assert request.answer().avps == []
    back = decode(err.encode())
    assert back.flags == err.flags and back.hop_by_hop == 0xAAAA5555


# --- unknown AVPs and flags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "avp",
    [
        Avp.octets(99_999, b"\x01\x02\x03", mandatory=True),
        Avp.octets(99_999, b"\x01\x02\x03", mandatory=False),
        Avp.octets(1234, b"opaque", vendor=98_765, mandatory=True),
        Avp.octets(1234, b"", vendor=98_765, mandatory=False),
        Avp.octets(Code3gpp.SERVICE_INFORMATION, b"not-grouped-without-the-3gpp-vendor"),
        Avp(99_998, AVP_M | AVP_P | 0x1F, 0, b"reserved bits"),  # P and reserved bits are ignored, kept
    ],
    ids=["unknown-M", "unknown", "unknown-vendor-M", "unknown-vendor-empty", "873-without-vendor", "bits"],
)
def test_unknown_avps_are_kept_raw(avp: Avp) -> None:
    msg = Message(
        272, FLAG_R, 4, 1, 2, [Avp.utf8(Code.SESSION_ID, "s"), avp, Avp.u32(Code.CC_REQUEST_NUMBER, 3)]
    )
    raw = msg.encode()
    back = decode(raw)
    got = back.avps[1]
    assert (got.code, got.vendor, got.flags, got.data, got.children) == (
        avp.code,
        avp.vendor,
        avp.flags,
        avp.data,
        None,
    )
    assert got.mandatory == bool(avp.flags & AVP_M)
    assert got.value() == avp.data
    assert back.encode() == raw
    # also inside a grouped AVP of the dictionary
    nested = Message(272, FLAG_R, 4, 1, 2, [Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [avp])])
    raw = nested.encode()
    assert decode(raw).encode() == raw
    assert decode(raw).avps[0].children == [avp]


def test_avp_equality() -> None:
    assert Avp.u32(Code.RATING_GROUP, 1) == Avp.u32(Code.RATING_GROUP, 1)
    assert Avp.u32(Code.RATING_GROUP, 1) != Avp.u32(Code.RATING_GROUP, 2)
    assert Avp.u32(Code.RATING_GROUP, 1) != Avp.u32(Code.RATING_GROUP, 1, mandatory=False)
    assert Avp.u32(Code.RATING_GROUP, 1) != Avp.u32(Code.RATING_GROUP, 1, vendor=V3)


# --- decode errors ------------------------------------------------------------------------------


def _avp_offset(raw: bytes, code: int, start: int = 20) -> int:
    """The offset of the first top-level AVP with this code."""
    offset = start
    while offset < len(raw):
        this, word = struct.unpack_from("!II", raw, offset)
        if this == code:
            return offset
        offset += (word & 0xFFFFFF) + (-(word & 0xFFFFFF) % 4)
    raise AssertionError(f"no AVP {code}")


def _set_avp_length(raw: bytes, offset: int, length: int) -> bytes:
    out = bytearray(raw)
    out[offset + 5 : offset + 8] = length.to_bytes(3, "big")
    return bytes(out)


def _with_length(raw: bytes | bytearray) -> bytes:
    """`raw` with its message length field set to its size."""
    out = bytearray(raw)
    out[1:4] = len(out).to_bytes(3, "big")
    return bytes(out)


def _refused(raw: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    error = info.value
    assert isinstance(error.result, Result) and str(error)
    if error.failed is not None:
        # the error answer a peer builds from it (as diameter.peer does) must itself be well formed
        header = error.header or Message(272, FLAG_R, 4, 1, 1)
        failed_avp = Avp.grouped(Code.FAILED_AVP, [error.failed])
        answer = header.answer([Avp.u32(Code.RESULT_CODE, error.result), failed_avp])
        assert decode(answer.encode()).avps[1] == failed_avp
        assert repr(error.failed) and repr(answer)  # for the logs: never raises
    return error


def _well_formed(failed: Avp | None) -> bool:
    """A Failed-AVP holding `failed` decodes as a grouped AVP (RFC 6733 7.1.5's minimal stand-in)."""
    raw = Message(272, 0, 4, 1, 1, [Avp.grouped(Code.FAILED_AVP, [failed] if failed else [])]).encode()
    return failed is not None and decode(raw).avps[0].children == [failed]


def test_shorter_than_a_header_is_5015() -> None:
    for raw in (b"", b"\x01", ccr().encode()[:19]):
        error = _refused(raw)
        assert error.result is Result.INVALID_MESSAGE_LENGTH and error.header is None and error.failed is None


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_bad_version_is_5011(version: int) -> None:
    raw = bytearray(ccr().encode())
    raw[0] = version
    error = _refused(bytes(raw))
    assert error.result is Result.UNSUPPORTED_VERSION and error.failed is None
    assert error.header is not None and error.header.hop_by_hop == 0x1234ABCD


@pytest.mark.parametrize("delta", [-8, -4, 4, 8, 0x10000])
def test_length_not_matching_is_5015(delta: int) -> None:
    raw = bytearray(ccr().encode())
    raw[1:4] = (len(raw) + delta).to_bytes(3, "big")
    error = _refused(bytes(raw))
    assert error.result is Result.INVALID_MESSAGE_LENGTH and error.failed is None
    assert error.header is not None and error.header.end_to_end == 0xFEDC0001


def test_length_too_small_for_a_header_is_5015() -> None:
    raw = bytearray(Message(280, FLAG_R, 0, 5, 6).encode())
    for length in (0, 4, 16):
        raw[1:4] = length.to_bytes(3, "big")
        error = _refused(bytes(raw))
        assert error.result is Result.INVALID_MESSAGE_LENGTH and error.header is not None


@pytest.mark.parametrize("extra", [1, 2, 3])
def test_length_not_a_multiple_of_4_is_5015(extra: int) -> None:
    raw = _with_length(ccr().encode() + b"\x00" * extra)  # length field and size agree, but not aligned
    error = _refused(raw)
    assert error.result is Result.INVALID_MESSAGE_LENGTH and error.failed is None and error.header is not None


@pytest.mark.parametrize("length", [0, 1, 7])
def test_avp_length_below_its_header_is_5014(length: int) -> None:
    raw = ccr().encode()
    error = _refused(_set_avp_length(raw, _avp_offset(raw, Code.CC_REQUEST_NUMBER), length))
    assert error.result is Result.INVALID_AVP_LENGTH
    assert error.header is not None and error.header.hop_by_hop == 0x1234ABCD
    assert error.failed is not None and error.failed.code == Code.CC_REQUEST_NUMBER
    assert error.failed.data == b"\x00" * 4  # zero-filled, the size of an Unsigned32 (RFC 6733 7.1.5)
    assert _well_formed(error.failed)


@pytest.mark.parametrize("length", [8, 11])
def test_vendor_avp_length_below_its_12_byte_header_is_5014(length: int) -> None:
    raw = ccr().encode()
    error = _refused(_set_avp_length(raw, _avp_offset(raw, Code3gpp.SERVICE_INFORMATION), length))
    assert error.result is Result.INVALID_AVP_LENGTH
    assert error.failed is not None
    assert (error.failed.code, error.failed.vendor, error.failed.children) == (873, V3, [])  # grouped: empty
    assert _well_formed(error.failed)


def test_avp_overrunning_the_message_is_5014() -> None:
    raw = ccr().encode()
    offset = _avp_offset(raw, Code3gpp.SERVICE_INFORMATION)  # the last AVP
    error = _refused(_set_avp_length(raw, offset, len(raw) - offset + 4))
    assert error.result is Result.INVALID_AVP_LENGTH
    assert error.failed is not None and (error.failed.code, error.failed.vendor) == (873, V3)
    # a UTF8String: the minimum payload is empty
    raw = Message(272, FLAG_R, 4, 1, 1, [Avp.utf8(Code.SESSION_ID, "abcd")]).encode()
    error = _refused(_set_avp_length(raw, 20, 13))
    assert error.failed is not None and error.failed.code == Code.SESSION_ID and error.failed.data == b""
    assert _well_formed(error.failed)


def test_avp_overrunning_its_grouped_avp_is_5014_with_the_inner_avp() -> None:
    msg = Message(
        272,
        FLAG_R,
        4,
        1,
        1,
        [
            Avp.grouped(Code.SUBSCRIPTION_ID, [Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0)]),
            Avp.u32(Code.CC_REQUEST_NUMBER, 0),
        ],
    )
    raw = msg.encode()
    error = _refused(_set_avp_length(raw, 28, 16))  # Subscription-Id-Type longer than Subscription-Id
    assert error.result is Result.INVALID_AVP_LENGTH and error.header is not None
    assert error.failed is not None and error.failed.code == Code.SUBSCRIPTION_ID_TYPE
    assert _well_formed(error.failed)


@pytest.mark.parametrize(
    ("avp", "data"),
    [
        (Avp.u32(Code.CC_REQUEST_NUMBER, 0), b"\x00" * 8),
        (Avp.u64(Code.CC_TOTAL_OCTETS, 0), b"\x00" * 4),
        (Avp.i32(Code.CC_REQUEST_TYPE, 0), b""),
        (Avp.time(Code.EVENT_TIMESTAMP, 0), b"\x00" * 5),
        (Avp.u32(Code3gpp.QUOTA_HOLDING_TIME, 0, vendor=V3), b"\x00" * 3),
    ],
)
def test_fixed_size_avp_with_wrong_length_is_5014(avp: Avp, data: bytes) -> None:
    avp.data = data
    for where in ("top", "nested"):
        body = (
            [avp]
            if where == "top"
            else [
                Avp.grouped(
                    Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [Avp.grouped(Code.USED_SERVICE_UNIT, [avp])]
                )
            ]
        )
        raw = Message(272, FLAG_R | FLAG_P, 4, 77, 88, [Avp.utf8(Code.SESSION_ID, "s"), *body]).encode()
        error = _refused(raw)
        assert error.result is Result.INVALID_AVP_LENGTH
        assert error.header is not None and error.header.hop_by_hop == 77
        assert error.failed is not None and (error.failed.code, error.failed.vendor) == (avp.code, avp.vendor)
        assert error.failed.data == data  # the offending AVP as received


def test_truncated_avp_header_is_5014() -> None:
    # 4 bytes after the last AVP: an AVP code and nothing else
    raw = _with_length(ccr().encode() + struct.pack("!I", Code.RATING_GROUP))
    error = _refused(raw)
    assert error.result is Result.INVALID_AVP_LENGTH and error.header is not None
    assert (
        error.failed is not None
        and error.failed.code == Code.RATING_GROUP
        and error.failed.data == b"\x00" * 4
    )
    assert _well_formed(error.failed)


def test_truncated_avp_header_inside_a_grouped_avp_is_5014() -> None:
    sub = Avp.grouped(Code.SUBSCRIPTION_ID, [Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0)])
    for junk, failed_code in (
        (b"\x00\x00\x01\xbc", Code.SUBSCRIPTION_ID_DATA),
        (b"\x01\x02", Code.SUBSCRIPTION_ID),
    ):
        data = sub.children[0].encode() + junk  # type: ignore[index]
        raw = Message(272, FLAG_R, 4, 1, 1, [Avp(Code.SUBSCRIPTION_ID, AVP_M, 0, data)]).encode()
        error = _refused(raw)
        assert error.result is Result.INVALID_AVP_LENGTH and error.header is not None
        assert error.failed is not None and error.failed.code == failed_code
        assert _well_formed(error.failed)


@pytest.mark.parametrize(
    "flags",
    [FLAG_R | FLAG_E, FLAG_R | FLAG_P | FLAG_E, 0x08, 0x04, 0x02, 0x01, FLAG_R | 0x0F, FLAG_P | 0x01],
    ids=["R+E", "R+P+E", "r4", "r5", "r6", "r7", "R+all-reserved", "P+r7"],
)
def test_bad_header_bits_are_3008(flags: int) -> None:
    raw = bytearray(ccr().encode())
    raw[4] = flags
    error = _refused(bytes(raw))
    assert error.result is Result.INVALID_HDR_BITS and error.failed is None
    assert error.header is not None and error.header.flags == flags and error.header.code == 272


def test_decode_errors_carry_the_header_for_the_answer() -> None:
    raw = ccr().encode()
    error = _refused(_set_avp_length(raw, _avp_offset(raw, Code.MULTIPLE_SERVICES_CREDIT_CONTROL), 9))
    head = error.header
    assert head is not None
    assert (head.code, head.flags, head.app, head.hop_by_hop, head.end_to_end) == (
        272,
        FLAG_R | FLAG_P,
        4,
        0x1234ABCD,
        0xFEDC0001,
    )
    answer = head.answer([Avp.u32(Code.RESULT_CODE, error.result)])
    assert decode(answer.encode()).hop_by_hop == 0x1234ABCD


def test_failed_avp_in_an_answer_may_carry_a_malformed_avp() -> None:
    """An error answer quotes the offending AVP as received (RFC 6733 7.1.5): a peer's 5014 answer
    holding our 5-byte Event-Timestamp must still decode, with Failed-AVP kept as raw bytes."""
    bad = Avp(Code.EVENT_TIMESTAMP, AVP_M, 0, b"\x00" * 5)
    answer = Message(
        272,
        FLAG_P,
        4,
        9,
        9,
        [Avp.u32(Code.RESULT_CODE, Result.INVALID_AVP_LENGTH), Avp.grouped(Code.FAILED_AVP, [bad])],
    )
    raw = answer.encode()
    back = decode(raw)
    assert back.result_code == 5014
    failed = back.find(Code.FAILED_AVP)
    assert failed is not None and failed.children is None and failed.data == bad.encode()
    assert failed.value() == bad.encode()
    assert back.encode() == raw
    # a well-formed Failed-AVP is decoded as a grouped AVP
    good = Message(272, FLAG_P, 4, 9, 9, [Avp.grouped(Code.FAILED_AVP, [Avp.u32(Code.RATING_GROUP, 3)])])
    assert decode(good.encode()).avps[0].children == [Avp.u32(Code.RATING_GROUP, 3)]
    # but other grouped AVPs are checked
    other = Message(272, FLAG_P, 4, 9, 9, [Avp.grouped(Code.PROXY_INFO, [bad])])
    assert _refused(other.encode()).result is Result.INVALID_AVP_LENGTH


@given(
    st.lists(
        st.tuples(st.sampled_from([263, 264, 296, 284, 443, 456, 873]), st.sampled_from([0, 0, VENDOR_3GPP])),
        max_size=12,
    ),
    st.frozensets(st.sampled_from([263, 264, 296, 284, 873])),
)
def test_keep_only_leaves_the_top_level_ietf_avps_asked_for_in_order(
    avps: list[tuple[int, int]], codes: frozenset[int]
) -> None:
    msg = Message(Cmd.CREDIT_CONTROL, FLAG_R, 4, 7, 8, [Avp(code, 0, vendor, b"x") for code, vendor in avps])
    expected = [a for a in msg.avps if a.vendor == 0 and a.code in codes]
    msg.keep_only(codes)
    assert msg.avps == expected and all(a is b for a, b in zip(msg.avps, expected, strict=True))
    assert (msg.code, msg.flags, msg.app, msg.hop_by_hop, msg.end_to_end) == (
        Cmd.CREDIT_CONTROL,
        FLAG_R,
        4,
        7,
        8,
    )
