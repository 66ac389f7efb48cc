"""DOIC (RFC 7683): the AVPs on the wire, a client's reading of reports (`diameter/doic.py`), and
the gateway's reports from its overload rule (`dgw/overload.py`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.dgw.overload import MAX_REDUCTION, REPORT_VALIDITY, Overload
from cellcelly.diameter import doic
from cellcelly.diameter.codec import DICTIONARY, Avp, DecodeError, Message, decode
from cellcelly.diameter.constants import APP_CREDIT_CONTROL, AVP_M, FLAG_R, OLR_DEFAULT_ALGO, Cmd, Code

pytestmark = pytest.mark.unit

WIRESHARK = Path("/usr/share/wireshark/diameter/dictionary.xml")
DELAY, WINDOW = 0.05, 0.2


def answer_with(*avps: Avp) -> Message:
    """An answer as it comes off the wire: encoded and decoded again."""
    msg = Message(Cmd.CREDIT_CONTROL, 0, APP_CREDIT_CONTROL, 1, 1, [Avp.utf8(Code.SESSION_ID, "s;1"), *avps])
    return decode(msg.encode())


def olr(*children: Avp) -> Avp:
    return Avp.grouped(Code.OC_OLR, list(children), mandatory=False)


def test_the_reports_round_trip_and_go_without_the_m_bit() -> None:
    report = doic.OverloadReport(1_733_000_000_123, 40, 10)
    got = answer_with(doic.supported(), doic.olr(report))
    assert doic.read_report(got) == report
    for avp in got.walk():
        if avp.code in range(621, 628):
            assert not avp.flags & AVP_M, avp  # a peer that does not know them passes them over
    features = got.find(Code.OC_SUPPORTED_FEATURES)
    assert features is not None and features.find(Code.OC_FEATURE_VECTOR).as_u64() == OLR_DEFAULT_ALGO  # type: ignore[union-attr]


@pytest.mark.skipif(not WIRESHARK.exists(), reason="Wireshark's Diameter dictionary is not installed")
def test_the_dictionary_names_and_codes_are_wiresharks() -> None:
    # read by pattern: the file uses entities ElementTree does not know
    found = re.findall(r'<avp name="(OC-[^"]+)" code="(\d+)"', WIRESHARK.read_text())
    theirs = {int(code): name for name, code in found}
    ours = {code: DICTIONARY[(code, 0)][0] for code in range(621, 628)}
    assert ours == {code: theirs[code] for code in ours}


def request(*avps: Avp) -> Message:
    return Message(
        Cmd.CREDIT_CONTROL, FLAG_R, APP_CREDIT_CONTROL, 1, 1, [Avp.utf8(Code.SESSION_ID, "s;1"), *avps]
    )


def test_a_request_understands_reports_when_it_says_so_with_the_loss_algorithm() -> None:
    assert not doic.understands(request())
    assert doic.understands(request(doic.supported()))
    bare = Avp.grouped(Code.OC_SUPPORTED_FEATURES, [], mandatory=False)
    assert doic.understands(request(bare))  # no vector: the loss algorithm (§7.2)
    other = Avp.grouped(Code.OC_SUPPORTED_FEATURES, [Avp.u64(Code.OC_FEATURE_VECTOR, 2, mandatory=False)])
    assert not doic.understands(request(other))
    short = Avp.grouped(Code.OC_SUPPORTED_FEATURES, [Avp.u32(Code.OC_FEATURE_VECTOR, 1, mandatory=False)])
    assert not doic.understands(request(short))  # a malformed vector is no promise


SEQ = Avp.u64(Code.OC_SEQUENCE_NUMBER, 7, mandatory=False)
HOST = Avp.u32(Code.OC_REPORT_TYPE, 0, mandatory=False)


def test_what_a_client_reads_from_an_olr() -> None:
    def read(*children: Avp) -> doic.OverloadReport | None:
        return doic.read_report(answer_with(olr(*children)))

    assert doic.read_report(answer_with()) is None
    red = Avp.u32(Code.OC_REDUCTION_PERCENTAGE, 150, mandatory=False)
    assert read(SEQ, HOST, red) == doic.OverloadReport(7, 100, doic.DEFAULT_VALIDITY)  # clamped, default
    long = Avp.u32(Code.OC_VALIDITY_DURATION, 10**6, mandatory=False)
    assert read(SEQ, HOST, red, long) == doic.OverloadReport(7, 100, doic.MAX_VALIDITY)
    assert read(HOST, red) is None  # no sequence number
    assert read(SEQ, red) is None  # no report type
    realm = Avp.u32(Code.OC_REPORT_TYPE, 1, mandatory=False)
    assert read(SEQ, realm, red) is None  # a realm report: not for a directly connected client
    wrong = Avp(Code.OC_REDUCTION_PERCENTAGE, 0, 0, b"\x00\x32")
    with pytest.raises(DecodeError, match="must be 4 bytes"):  # the codec refuses it (5014) first
        read(SEQ, HOST, wrong)
    assert read(SEQ, HOST).ends  # type: ignore[union-attr]  # no reduction asked: nothing to do


def test_a_client_keeps_the_latest_report_of_each_host_until_it_ends_or_expires() -> None:
    a = doic.Abatement()
    a.heard("dgw1", doic.OverloadReport(10, 40, 5), 0.0)
    assert a.reduction("dgw1", 1.0) == 40 and a.reduction("dgw2", 1.0) == 0
    a.heard("dgw1", doic.OverloadReport(9, 90, 5), 1.0)  # older, come late: ignored
    assert a.reduction("dgw1", 1.0) == 40
    a.heard("dgw1", doic.OverloadReport(10, 40, 5), 4.0)  # the same again: renewed
    assert a.reduction("dgw1", 8.0) == 40 and a.reduction("dgw1", 9.0) == 0  # expired
    a.heard("dgw1", doic.OverloadReport(11, 60, 5), 9.0)
    assert a.reduction("dgw1", 9.5) == 60
    a.heard("dgw1", doic.OverloadReport(12, 0, 0), 10.0)  # ended
    assert a.reduction("dgw1", 10.0) == 0
    a.heard("dgw1", doic.OverloadReport(11, 60, 5), 10.5)  # the older one, replayed: still ended
    assert a.reduction("dgw1", 10.5) == 0


@given(reduction=st.integers(0, 100), draw=st.floats(0.0, 1.0, exclude_max=True))
def test_the_loss_algorithm_holds_back_the_reported_share(reduction: int, draw: float) -> None:
    a = doic.Abatement()
    a.heard("dgw1", doic.OverloadReport(1, reduction, 30), 0.0)
    assert a.throttles("dgw1", 1.0, draw) == (draw * 100 < reduction)
    assert not a.throttles("dgw1", 31.0, draw)  # its validity ran out
    assert not a.throttles("elsewhere", 1.0, draw)


def windows(rule: Overload, start: float, took: float, count: int) -> float:
    """`count` windows of answers each `took` long, one a ms; the time after."""
    now = start
    while now < start + count * WINDOW:
        rule.answered(took, now)
        now += 0.001
    return now


def test_the_gateway_reports_more_while_overloaded_and_less_after_then_ends_the_report() -> None:
    rule = Overload(DELAY, WINDOW, sequence=1000)
    now = windows(rule, 0.0, 0.002, 3)
    assert rule.report(now) is None  # never overloaded: nothing to tell
    now = windows(rule, now, 0.3, 1)  # the window under way when the queue formed
    seen = []
    for _ in range(15):
        now = windows(rule, now, 0.3, 1)
        report = rule.report(now)
        assert report is not None and report.validity == REPORT_VALIDITY
        seen.append(report)
    reductions = [r.reduction for r in seen]
    assert reductions[0] > 0 and reductions == sorted(reductions) and reductions[-1] == MAX_REDUCTION
    sequences = [r.sequence for r in seen]
    assert sequences == sorted(sequences) and sequences[0] > 1000
    assert len(set(sequences)) == len(set(reductions))  # a new number for each change, only then
    easing = []
    while (report := rule.report(now)) is not None and not report.ends:
        now = windows(rule, now, 0.002, 1)
        easing.append(report.reduction)
    assert easing == sorted(easing, reverse=True) and len(easing) > len(set(reductions)) // 2
    assert report is not None and report.validity == 0 and report.sequence > sequences[-1]
    assert rule.report(now + REPORT_VALIDITY - WINDOW - 0.01) == report  # told for a report's validity
    assert rule.report(now + REPORT_VALIDITY + 0.01) is None


def test_without_a_delay_the_gateway_never_reports() -> None:
    rule = Overload(0.0, WINDOW)
    now = windows(rule, 0.0, 5.0, 5)
    assert rule.report(now) is None
