"""Wireshark's Diameter dissector as an independent judge of our encoder.

Our encoded CCR-I/U/T/E, CCA, CER/CEA, DWR/DWA and DPR/DPA go into a pcap (one TCP segment each,
port 3868); tshark dissects it to PDML, and we check that nothing is malformed or flagged, that
the command codes, flags and identifiers are right, and that the key AVPs are decoded with the
values we put in. A negative control proves the check can fail: a corrupted AVP length is flagged.

(tshark 4.x has no "diameter.tcp.ports" preference any more; the port is bound with
`-d tcp.port==3868,diameter`, which every version understands.)
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cellcelly.diameter import doic
from cellcelly.diameter.codec import Avp, DecodeError, Message, decode
from cellcelly.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    CONTEXT_PS,
    CONTEXT_SMS,
    FLAG_E,
    FLAG_P,
    FLAG_R,
    FLAG_T,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
)
from cellcelly_testing import require
from diameter_pcap import DIAMETER_PORT, pcap_bytes, write_pcap

pytestmark = pytest.mark.unit

V3 = VENDOR_3GPP
SESSION = "pgw1.example.net;1700000000;777"
MSISDN = "905321234567"


# --- the messages -------------------------------------------------------------------------------


def _g(code: int, children: list[Avp], vendor: int = 0) -> Avp:
    return Avp.grouped(code, children, vendor=vendor)


def _mscc(rating_group: int, rsu: tuple[int, int] | None, usu: tuple[int, int] | None) -> Avp:
    children = []
    if rsu is not None:
        children.append(
            _g(
                Code.REQUESTED_SERVICE_UNIT,
                [Avp.u32(Code.CC_TIME, rsu[0]), Avp.u64(Code.CC_TOTAL_OCTETS, rsu[1])],
            )
        )
    if usu is not None:
        children.append(
            _g(
                Code.USED_SERVICE_UNIT,
                [
                    Avp.u32(Code.CC_TIME, usu[0]),
                    Avp.u64(Code.CC_TOTAL_OCTETS, usu[1]),
                    Avp.i32(Code3gpp.REPORTING_REASON, 2, vendor=V3),
                ],
            )
        )
    children.append(Avp.u32(Code.RATING_GROUP, rating_group))
    return _g(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def ccr(request_type: int, number: int, hbh: int, body: list[Avp], context: str = CONTEXT_PS) -> Message:
    return Message(
        Cmd.CREDIT_CONTROL,
        FLAG_R | FLAG_P,
        APP_CREDIT_CONTROL,
        hbh,
        0x5E000000 + hbh,
        [
            Avp.utf8(Code.SESSION_ID, SESSION),
            Avp.utf8(Code.ORIGIN_HOST, "pgw1.example.net"),
            Avp.utf8(Code.ORIGIN_REALM, "example.net"),
            Avp.utf8(Code.DESTINATION_REALM, "ocs.example.net"),
            Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
            Avp.utf8(Code.SERVICE_CONTEXT_ID, context),
            Avp.i32(Code.CC_REQUEST_TYPE, request_type),
            Avp.u32(Code.CC_REQUEST_NUMBER, number),
            Avp.time(Code.EVENT_TIMESTAMP, 1_700_000_000),
            _g(
                Code.SUBSCRIPTION_ID,
                [Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0), Avp.utf8(Code.SUBSCRIPTION_ID_DATA, MSISDN)],
            ),
            *body,
        ],
    )


def _ps_information(mcc_mnc: str = "28601") -> Avp:
    return _g(
        Code3gpp.SERVICE_INFORMATION,
        [
            _g(
                Code3gpp.PS_INFORMATION,
                [
                    Avp.u32(Code3gpp.CHARGING_ID, 0x0BADCAFE, vendor=V3),
                    Avp.utf8(Code.CALLED_STATION_ID, "internet"),
                    Avp.utf8(Code3gpp.SGSN_MCC_MNC, mcc_mnc, vendor=V3),
                ],
                vendor=V3,
            )
        ],
        vendor=V3,
    )


def _sms_information() -> Avp:
    address = [
        Avp.i32(Code3gpp.ADDRESS_TYPE, 1, vendor=V3),
        Avp.utf8(Code3gpp.ADDRESS_DATA, "905551112233", vendor=V3),
    ]
    return _g(
        Code3gpp.SERVICE_INFORMATION,
        [
            _g(
                Code3gpp.SMS_INFORMATION,
                [
                    Avp.i32(Code3gpp.SMS_NODE, 0, vendor=V3),
                    Avp.i32(Code3gpp.DATA_CODING_SCHEME, 8, vendor=V3),
                    _g(
                        Code3gpp.RECIPIENT_INFO,
                        [_g(Code3gpp.RECIPIENT_ADDRESS, address, vendor=V3)],
                        vendor=V3,
                    ),
                ],
                vendor=V3,
            )
        ],
        vendor=V3,
    )


CCR_I = ccr(
    1,
    0,
    0x101,
    [Avp.i32(Code.MULTIPLE_SERVICES_INDICATOR, 1), _mscc(10, (600, 10_485_760), None), _ps_information()],
)
CCR_U = ccr(
    2,
    1,
    0x102,
    [
        Avp.i32(Code.MULTIPLE_SERVICES_INDICATOR, 1),
        _mscc(10, (600, 10_485_760), (597, 9_999_999)),
        _mscc(20, (300, 1_073_741_824), (0, 5_000_000_000)),
        _mscc(30, None, (12, 4096)),
        _ps_information(),
        doic.supported(),  # RFC 7683: this client takes overload reports
    ],
)
CCR_T = ccr(
    3, 2, 0x103, [Avp.i32(Code.TERMINATION_CAUSE, 1), _mscc(10, None, (41, 123_456)), _ps_information()]
)
CCR_E = ccr(
    4,
    0,
    0x104,
    [
        Avp.i32(Code.REQUESTED_ACTION, 0),
        _g(
            Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                _g(Code.REQUESTED_SERVICE_UNIT, [Avp.u64(Code.CC_SERVICE_SPECIFIC_UNITS, 1)]),
                Avp.u32(Code.RATING_GROUP, 40),
            ],
        ),
        _sms_information(),
    ],
    context=CONTEXT_SMS,
)
CCA = CCR_U.answer(
    [
        Avp.utf8(Code.SESSION_ID, SESSION),
        Avp.u32(Code.RESULT_CODE, 2001),
        Avp.utf8(Code.ORIGIN_HOST, "ocs1.ocs.example.net"),
        Avp.utf8(Code.ORIGIN_REALM, "ocs.example.net"),
        Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
        Avp.i32(Code.CC_REQUEST_TYPE, 2),
        Avp.u32(Code.CC_REQUEST_NUMBER, 1),
        _g(
            Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                _g(
                    Code.GRANTED_SERVICE_UNIT,
                    [Avp.u32(Code.CC_TIME, 300), Avp.u64(Code.CC_TOTAL_OCTETS, 52_428_800)],
                ),
                Avp.u32(Code.RATING_GROUP, 10),
                Avp.u32(Code.VALIDITY_TIME, 3600),
                Avp.u32(Code.RESULT_CODE, 2001),
                _g(
                    Code.FINAL_UNIT_INDICATION,
                    [
                        Avp.i32(Code.FINAL_UNIT_ACTION, 1),  # REDIRECT
                        _g(
                            Code.REDIRECT_SERVER,
                            [
                                Avp.i32(Code.REDIRECT_ADDRESS_TYPE, 2),
                                Avp.utf8(Code.REDIRECT_SERVER_ADDRESS, "http://topup.example.net/"),
                            ],
                        ),
                    ],
                ),
                Avp.u32(Code3gpp.QUOTA_HOLDING_TIME, 900, vendor=V3),
            ],
        ),
        _g(
            Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                Avp.u32(Code.RATING_GROUP, 20),
                Avp.u32(Code.RESULT_CODE, 4012),
            ],  # DIAMETER_CREDIT_LIMIT_REACHED
        ),
        Avp.i32(Code.CREDIT_CONTROL_FAILURE_HANDLING, 1),
        doic.supported(),
        doic.olr(doic.OverloadReport(1_733_000_000_123, 40, 10)),  # what an overloaded gateway adds
    ]
)


def _who(host: str) -> list[Avp]:
    return [Avp.utf8(Code.ORIGIN_HOST, host), Avp.utf8(Code.ORIGIN_REALM, host.split(".", 1)[1])]


_CAPABILITIES = [
    Avp.address(Code.HOST_IP_ADDRESS, "10.0.0.1"),
    Avp.u32(Code.VENDOR_ID, 0),
    Avp.utf8(Code.PRODUCT_NAME, "CellCelly", mandatory=False),
    Avp.u32(Code.ORIGIN_STATE_ID, 1_700_000_000),
    Avp.u32(Code.SUPPORTED_VENDOR_ID, V3),
    Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
    _g(
        Code.VENDOR_SPECIFIC_APPLICATION_ID,
        [Avp.u32(Code.VENDOR_ID, V3), Avp.u32(Code.AUTH_APPLICATION_ID, 4)],
    ),
    Avp.u32(Code.FIRMWARE_REVISION, 1, mandatory=False),
]
CER = Message(
    Cmd.CAPABILITIES_EXCHANGE, FLAG_R, APP_COMMON, 0x1, 0x1001, [*_who("pgw1.example.net"), *_CAPABILITIES]
)
CEA = CER.answer([Avp.u32(Code.RESULT_CODE, 2001), *_who("ocs1.ocs.example.net"), *_CAPABILITIES])
DWR = Message(Cmd.DEVICE_WATCHDOG, FLAG_R | FLAG_T, APP_COMMON, 0x2, 0x1002, [*_who("pgw1.example.net")])
DWA = DWR.answer([Avp.u32(Code.RESULT_CODE, 2001), *_who("ocs1.ocs.example.net")])
DPR = Message(
    Cmd.DISCONNECT_PEER,
    FLAG_R,
    APP_COMMON,
    0x3,
    0x1003,
    [*_who("pgw1.example.net"), Avp.i32(Code.DISCONNECT_CAUSE, 0)],
)
DPA = DPR.answer([Avp.u32(Code.RESULT_CODE, 2001), *_who("ocs1.ocs.example.net")])

# in the order of a connection's life
CONVERSATION: list[tuple[str, Message]] = [
    ("CER", CER),
    ("CEA", CEA),
    ("CCR-I", CCR_I),
    ("CCR-U", CCR_U),
    ("CCA", CCA),
    ("DWR", DWR),
    ("DWA", DWA),
    ("CCR-T", CCR_T),
    ("CCR-E", CCR_E),
    ("DPR", DPR),
    ("DPA", DPA),
]


# --- tshark -------------------------------------------------------------------------------------


@dataclass
class Dissected:
    """What tshark made of one Diameter message."""

    fields: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    experts: list[str] = field(default_factory=list)

    def one(self, name: str) -> str:
        values = self.fields[f"diameter.{name}"]
        assert len(values) == 1, (name, values)
        return values[0]

    def all(self, name: str) -> list[str]:
        return self.fields[f"diameter.{name}"]


def _tshark() -> str:
    path = shutil.which("tshark")
    require(path is not None, "tshark not installed: apt-get install tshark")
    assert path is not None
    return path


def dissect(pcap: Path) -> tuple[list[Dissected], str]:
    """tshark's PDML for `pcap`: one Dissected per Diameter message, and the raw output."""
    # -2: two passes, so that a request also links to its answer; -n: no name resolution
    command = [_tshark(), "-r", str(pcap), "-2", "-n", "-V", "-T", "pdml"]
    command += ["-d", f"tcp.port=={DIAMETER_PORT},diameter"]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    messages: list[Dissected] = []
    for packet in ET.fromstring(run.stdout).iter("packet"):
        # expert infos of any layer of the packet (a malformed packet is a layer of its own)
        experts = [
            node.get("showname", name)
            for node in packet.iter()
            if (name := node.get("name", "")) == "_ws.expert" or name.startswith("_ws.malformed")
        ]
        diameter = [proto for proto in packet.iter("proto") if proto.get("name") == "diameter"]
        for i, proto in enumerate(diameter):
            seen = Dissected(experts=experts if i == 0 else [])
            for f in proto.iter("field"):
                name = f.get("name", "")
                if name.startswith("diameter."):
                    seen.fields[name].append(f.get("show", ""))
            messages.append(seen)
    return messages, run.stdout


@pytest.fixture(scope="module")
def dissected(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Dissected], str]:
    pcap = write_pcap(tmp_path_factory.mktemp("tshark") / "gy.pcap", [m.encode() for _, m in CONVERSATION])
    return dissect(pcap)


def _by_name(dissected: tuple[list[Dissected], str]) -> dict[str, Dissected]:
    messages, _ = dissected
    assert len(messages) == len(CONVERSATION)
    return {name: seen for (name, _), seen in zip(CONVERSATION, messages, strict=True)}


# --- the checks ---------------------------------------------------------------------------------


def test_nothing_is_malformed_or_flagged(dissected: tuple[list[Dissected], str]) -> None:
    messages, output = dissected
    assert len(messages) == len(CONVERSATION)
    assert "malformed" not in output.lower()
    assert "Expert Info (Error" not in output
    # stricter: no expert info at all, in any layer (an unknown AVP, a wrong length, a trailing byte
    # or a TCP sequence problem would each raise one)
    assert [seen.experts for seen in messages] == [[] for _ in messages]


@pytest.mark.parametrize(("name", "message"), CONVERSATION, ids=[n for n, _ in CONVERSATION])
def test_header(dissected: tuple[list[Dissected], str], name: str, message: Message) -> None:
    seen = _by_name(dissected)[name]
    assert seen.one("version") == "0x01"
    assert int(seen.one("length")) == len(message.encode())
    assert int(seen.one("cmd.code")) == message.code
    assert int(seen.one("flags"), 16) == message.flags
    bits = ("request", "proxyable", "error", "T")
    assert [seen.one(f"flags.{bit}") for bit in bits] == [
        "1" if message.flags & flag else "0" for flag in (FLAG_R, FLAG_P, FLAG_E, FLAG_T)
    ]
    assert int(seen.one("applicationId")) == message.app
    assert int(seen.one("hopbyhopid"), 16) == message.hop_by_hop
    assert int(seen.one("endtoendid"), 16) == message.end_to_end
    # every AVP we wrote, nested ones included, was dissected as one, with our M and V bits
    avps = list(message.walk())
    assert len(seen.all("avp")) == len(avps)
    assert [int(code) for code in seen.all("avp.code")] == [a.code for a in avps]
    assert seen.all("flags.mandatory") == ["1" if a.mandatory else "0" for a in avps]
    assert seen.all("flags.vendorspecific") == ["1" if a.vendor else "0" for a in avps]
    assert [int(v) for v in seen.all("avp.vendorId")] == [a.vendor for a in avps if a.vendor]


def test_answers_are_matched_to_their_requests(dissected: tuple[list[Dissected], str]) -> None:
    """Wireshark pairs an answer with its request by hop-by-hop and end-to-end identifiers."""
    seen = _by_name(dissected)
    frame = {name: i + 1 for i, (name, _) in enumerate(CONVERSATION)}
    for request, answer in (("CER", "CEA"), ("CCR-U", "CCA"), ("DWR", "DWA"), ("DPR", "DPA")):
        assert seen[answer].all("answer_to") == [str(frame[request])], answer
        assert seen[request].all("answer_in") == [str(frame[answer])], request


@pytest.mark.parametrize(
    ("name", "request_type", "number"), [("CCR-I", 1, 0), ("CCR-U", 2, 1), ("CCR-T", 3, 2), ("CCR-E", 4, 0)]
)
def test_ccr_values(
    dissected: tuple[list[Dissected], str], name: str, request_type: int, number: int
) -> None:
    seen = _by_name(dissected)[name]
    assert seen.one("Session-Id") == SESSION
    assert seen.one("Origin-Host") == "pgw1.example.net"
    assert seen.one("Destination-Realm") == "ocs.example.net"
    assert seen.one("Auth-Application-Id") == "4"
    assert seen.one("Service-Context-Id") == ("32274@3gpp.org" if name == "CCR-E" else "32251@3gpp.org")
    assert seen.one("CC-Request-Type") == str(request_type)
    assert seen.one("CC-Request-Number") == str(number)
    assert seen.one("Subscription-Id-Type") == "0"
    assert seen.one("Subscription-Id-Data") == MSISDN
    if name == "CCR-E":
        assert seen.one("Requested-Action") == "0"
        assert seen.all("Rating-Group") == ["40"]
        assert seen.one("CC-Service-Specific-Units") == "1"
        assert seen.one("Address-Data") == "905551112233"
        assert seen.one("Data-Coding-Scheme") == "8"
        assert seen.all("3GPP-SGSN-MCC-MNC") == []
    else:
        assert seen.one("3GPP-SGSN-MCC-MNC") == "28601"
        assert seen.one("Called-Station-Id") == "internet"


def test_ccr_update_with_several_mscc(dissected: tuple[list[Dissected], str]) -> None:
    seen = _by_name(dissected)["CCR-U"]
    assert seen.all("Rating-Group") == ["10", "20", "30"]
    # RSU then USU in each MSCC, in wire order: (600, 10 MiB), (597, ...), (300, 1 GiB), (0, 5e9), (12, 4096)
    assert seen.all("CC-Time") == ["600", "597", "300", "0", "12"]
    assert seen.all("CC-Total-Octets") == ["10485760", "9999999", "1073741824", "5000000000", "4096"]
    assert seen.all("Multiple-Services-Indicator") == ["1"]


def test_ccr_initial_and_termination(dissected: tuple[list[Dissected], str]) -> None:
    seen = _by_name(dissected)
    assert (seen["CCR-I"].all("CC-Time"), seen["CCR-I"].all("CC-Total-Octets")) == (["600"], ["10485760"])
    assert seen["CCR-I"].all("Rating-Group") == ["10"]
    assert (seen["CCR-T"].all("CC-Time"), seen["CCR-T"].all("CC-Total-Octets")) == (["41"], ["123456"])
    assert seen["CCR-T"].one("Termination-Cause") == "1"


def test_cca_values(dissected: tuple[list[Dissected], str]) -> None:
    seen = _by_name(dissected)["CCA"]
    assert seen.one("Session-Id") == SESSION
    assert seen.all("Result-Code") == ["2001", "2001", "4012"]  # the message's, then each MSCC's
    assert seen.all("Rating-Group") == ["10", "20"]
    assert seen.one("Validity-Time") == "3600"
    assert seen.one("CC-Time") == "300"
    assert seen.one("CC-Total-Octets") == "52428800"
    assert seen.one("Final-Unit-Action") == "1"
    assert seen.one("Redirect-Address-Type") == "2"
    assert seen.one("Redirect-Server-Address") == "http://topup.example.net/"
    assert seen.one("Quota-Holding-Time") == "900"
    assert seen.one("Credit-Control-Failure-Handling") == "1"


def test_doic_values(dissected: tuple[list[Dissected], str]) -> None:
    seen = _by_name(dissected)
    assert seen["CCR-U"].one("OC-Feature-Vector") == "1"  # OLR_DEFAULT_ALGO, the loss algorithm
    cca = seen["CCA"]
    assert cca.one("OC-Feature-Vector") == "1"
    assert cca.one("OC-Sequence-Number") == "1733000000123"
    assert cca.one("OC-Report-Type") == "0"  # HOST_REPORT
    assert cca.one("OC-Reduction-Percentage") == "40"
    assert cca.one("OC-Validity-Duration") == "10"


def test_base_protocol_values(dissected: tuple[list[Dissected], str]) -> None:
    seen = _by_name(dissected)
    for name in ("CER", "CEA"):
        assert seen[name].one("Host-IP-Address.addr_family") == "1"
        assert seen[name].one("Host-IP-Address.IPv4") == "10.0.0.1"
        assert seen[name].one("Product-Name") == "CellCelly"
        assert seen[name].all("Vendor-Id") == ["0", "10415"]
        assert seen[name].all("Auth-Application-Id") == ["4", "4"]
        assert seen[name].one("Supported-Vendor-Id") == "10415"
    for name in ("CEA", "DWA", "DPA"):
        assert seen[name].one("Result-Code") == "2001"
        assert seen[name].one("Origin-Host") == "ocs1.ocs.example.net"
    assert seen["DWR"].one("Origin-Realm") == "example.net"
    assert seen["DPR"].one("Disconnect-Cause") == "0"


# --- negative controls --------------------------------------------------------------------------


def _offsets(avps: list[Avp], start: int = 20) -> Iterator[tuple[Avp, int]]:
    """Each AVP (depth first) with its offset in the encoded message."""
    offset = start
    for avp in avps:
        yield avp, offset
        if avp.children is not None:
            yield from _offsets(avp.children, offset + (12 if avp.vendor else 8))
        offset += len(avp.encode())


def _corrupt_avp_length(message: Message, code: int, length: int | None = None) -> bytes:
    """`message` encoded, with the length of its first AVP with this code (at any depth) set to
    `length`, or to 8 bytes past the end of the message."""
    raw = bytearray(message.encode())
    at = next(offset for avp, offset in _offsets(message.avps) if avp.code == code)
    raw[at + 5 : at + 8] = (len(raw) - at + 8 if length is None else length).to_bytes(3, "big")
    return bytes(raw)


@pytest.mark.parametrize(
    ("code", "length", "severity"),
    [
        (Code3gpp.SERVICE_INFORMATION, None, "Error"),  # the last AVP, overrunning the message
        (Code.RATING_GROUP, 60, "Error"),  # overrunning its MSCC
        (Code.SUBSCRIPTION_ID_DATA, 4, "Error"),  # shorter than an AVP header
        (Code.CC_TIME, 9, "Warning"),  # a 1-byte Unsigned32
    ],
    ids=["overruns-the-message", "overruns-its-grouped-avp", "below-its-header", "wrong-fixed-size"],
)
def test_a_corrupted_avp_length_is_flagged(
    tmp_path: Path, code: int, length: int | None, severity: str
) -> None:
    raw = _corrupt_avp_length(CCR_U, code, length)
    with pytest.raises(DecodeError):  # we refuse it too
        decode(raw)
    messages, output = dissect(write_pcap(tmp_path / "bad.pcap", [raw]))
    assert len(messages) == 1
    assert any(f"Expert Info ({severity}/Malformed)" in e for e in messages[0].experts), messages[0].experts
    assert "malformed" in output.lower()


def test_the_pcap_is_well_formed() -> None:
    """The pcap writer itself: global header, one record per message, IPv4 total length right."""
    raw = pcap_bytes([CER.encode(), CEA.encode()])
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian microsecond pcap
    assert int.from_bytes(raw[20:24], "little") == 1  # Ethernet
    offset = 24
    for message in (CER, CEA):
        captured = int.from_bytes(raw[offset + 8 : offset + 12], "little")
        frame = raw[offset + 16 : offset + 16 + captured]
        assert frame[12:14] == b"\x08\x00"
        ip = frame[14:]
        assert ip[0] == 0x45 and ip[9] == 6
        assert int.from_bytes(ip[2:4], "big") == 20 + 20 + len(message.encode()) == len(ip)
        tcp = ip[20:]
        ports = (int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big"))
        assert DIAMETER_PORT in ports and (ports[1] == DIAMETER_PORT) == message.is_request
        assert tcp[20:] == message.encode()
        offset += 16 + captured
    assert offset == len(raw)
