"""`make bench`: our Diameter codec beside python-diameter (the baseline) on the same CCR-U bytes.

The message is a realistic Gy CCR-U with two Multiple-Services-Credit-Control AVPs (about 400
bytes). Decode is bytes -> message object (python-diameter: its typed `CreditControlRequest`, which
decodes every AVP into attributes; ours: the AVP tree, grouped AVPs decoded, leaves left as
bytes, and a second entry that also reads every value). Encode is message object -> bytes
(python-diameter: from the attributes of the message it decoded; ours: from the decoded tree, and
a second entry that also builds the tree from values, as the gateway does for an answer).

`bench_codec()` returns entries shaped like `cellcelly_dev.benchstats.summarise()`; each runs for `seconds`
after a warm-up, timing every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cellcelly.dgw.ccr_reader import read_ccr
from cellcelly.dgw.gy import build_cca, parse_ccr
from cellcelly.diameter.cca_reader import read_cca
from cellcelly.diameter.ccr import parse_cca
from cellcelly.diameter.codec import Avp, Message, decode
from cellcelly.diameter.constants import (
    APP_CREDIT_CONTROL,
    CONTEXT_PS,
    FLAG_P,
    FLAG_R,
    VENDOR_3GPP,
    Cmd,
    Code,
    Code3gpp,
)
from cellcelly.diameter.peer import LocalPeer
from cellcelly.domain.charging import ChargeAnswer, ResultCode, ServiceResult
from cellcelly_dev.benchstats import summarise

WARM_UP = 500


def sample_ccr_update(session: str = "pgw1.example.net;1700000000;4242", number: int = 1) -> Message:
    """A Gy CCR-U for a data session reporting and re-requesting quota for two rating groups."""

    def mscc(rating_group: int, used_seconds: int, used_octets: int) -> Avp:
        return Avp.grouped(
            Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
            [
                Avp.grouped(Code.REQUESTED_SERVICE_UNIT, [Avp.u64(Code.CC_TOTAL_OCTETS, 10 << 20)]),
                Avp.grouped(
                    Code.USED_SERVICE_UNIT,
                    [Avp.u32(Code.CC_TIME, used_seconds), Avp.u64(Code.CC_TOTAL_OCTETS, used_octets)],
                ),
                Avp.u32(Code.RATING_GROUP, rating_group),
            ],
        )

    return Message(
        Cmd.CREDIT_CONTROL,
        FLAG_R | FLAG_P,
        APP_CREDIT_CONTROL,
        0x2A000000 + number,
        0x7E000000 + number,
        [
            Avp.utf8(Code.SESSION_ID, session),
            Avp.utf8(Code.ORIGIN_HOST, "pgw1.example.net"),
            Avp.utf8(Code.ORIGIN_REALM, "example.net"),
            Avp.utf8(Code.DESTINATION_REALM, "ocs.example.net"),
            Avp.u32(Code.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
            Avp.utf8(Code.SERVICE_CONTEXT_ID, CONTEXT_PS),
            Avp.i32(Code.CC_REQUEST_TYPE, 2),  # UPDATE_REQUEST
            Avp.u32(Code.CC_REQUEST_NUMBER, number),
            Avp.time(Code.EVENT_TIMESTAMP, 1_700_000_000),
            Avp.grouped(
                Code.SUBSCRIPTION_ID,
                [Avp.i32(Code.SUBSCRIPTION_ID_TYPE, 0), Avp.utf8(Code.SUBSCRIPTION_ID_DATA, "905321234567")],
            ),
            mscc(10, 590, 9_000_000),
            mscc(20, 590, 123_456),
            Avp.grouped(
                Code3gpp.SERVICE_INFORMATION,
                [
                    Avp.grouped(
                        Code3gpp.PS_INFORMATION,
                        [Avp.utf8(Code3gpp.SGSN_MCC_MNC, "28601", vendor=VENDOR_3GPP)],
                        vendor=VENDOR_3GPP,
                    )
                ],
                vendor=VENDOR_3GPP,
            ),
        ],
    )


def _loop(name: str, seconds: float, fn: Callable[[], object]) -> dict[str, Any]:
    """Call fn() for `seconds` after a warm-up, timing each call; an exception counts as an error."""
    errors = 0
    for _ in range(WARM_UP):
        fn()
    clock = time.perf_counter_ns
    latencies: list[int] = []
    start = clock()
    deadline = start + int(seconds * 1e9)
    while True:
        t0 = clock()
        try:
            fn()
        except Exception:  # a failing codec is a result to report, not a crash of the bench
            errors += 1
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return summarise(name, len(latencies), (clock() - start) / 1e9, latencies, errors)


def _read_everything(raw: bytes) -> None:
    for avp in decode(raw).walk():
        if avp.children is None:  # each leaf once (a grouped AVP's value() reads its whole subtree)
            avp.value()


def gateway_round(raw: bytes, local: LocalPeer) -> bytes:
    """What the gateway does to a CCR besides charging it: decode, read the charging request,
    build the CCA from an answer granting what was asked, encode."""
    msg = decode(raw)
    req, _ = parse_ccr(msg)
    granted = tuple(
        ServiceResult(u.rating_group, ResultCode.SUCCESS, u.requested or 1, 3600) for u in req.services
    )
    answer = ChargeAnswer(req.session_id, req.request_type, req.request_number, ResultCode.SUCCESS, granted)
    return build_cca(msg, req, answer, local).encode()


def read_round(raw: bytes, local: LocalPeer) -> bytes:
    """`gateway_round` as the gateway runs it since 2026-12-07: the CCR read straight from its
    bytes (`dgw/ccr_reader.py`) in place of decode and parse_ccr."""
    read = read_ccr(raw)
    if read is None:
        raise AssertionError("the CCR reader left the bench's CCR-U to the full path")
    msg, req = read
    granted = tuple(
        ServiceResult(u.rating_group, ResultCode.SUCCESS, u.requested or 1, 3600) for u in req.services
    )
    answer = ChargeAnswer(req.session_id, req.request_type, req.request_number, ResultCode.SUCCESS, granted)
    return build_cca(msg, req, answer, local).encode()


def bench_codec(seconds: float = 2.0) -> list[dict[str, Any]]:
    """Decode and encode of a 2-MSCC CCR-U: python-diameter (baseline) first, then ours."""
    message = sample_ccr_update()
    raw = message.encode()
    ours = decode(raw)
    if ours.encode() != raw:
        raise AssertionError("the codec does not round-trip its own CCR-U")
    what = f"CCR-U, 2 MSCC, {len(raw)} B"
    results: list[dict[str, Any]] = []
    try:
        from diameter.message import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            Message as PdMessage,  # python-diameter, the baseline
        )
    except ImportError:
        PdMessage = None
    if PdMessage is not None:
        theirs = PdMessage.from_bytes(raw)
        if theirs.session_id != ours.session_id or len(theirs.as_bytes()) != len(raw):
            raise AssertionError("python-diameter does not read the CCR-U as we wrote it")
        results.append(
            _loop(
                f"codec baseline: python-diameter decode ({what})", seconds, lambda: PdMessage.from_bytes(raw)
            )
        )
        results.append(_loop(f"codec baseline: python-diameter encode ({what})", seconds, theirs.as_bytes))
        note = ""
    else:
        note = " [python-diameter not installed: no baseline]"
    results.append(_loop(f"codec: cellcelly decode ({what}){note}", seconds, lambda: decode(raw)))
    results.append(
        _loop(
            f"codec: cellcelly decode + read every value ({what}){note}",
            seconds,
            lambda: _read_everything(raw),
        )
    )
    results.append(_loop(f"codec: cellcelly encode ({what}){note}", seconds, ours.encode))
    results.append(
        _loop(
            f"codec: cellcelly build + encode ({what}){note}",
            seconds,
            lambda: sample_ccr_update().encode(),
        )
    )
    local = LocalPeer("dgw.cellcelly.local", "cellcelly.local")
    results.append(
        _loop(
            f"codec: the gateway's round, decode + parse_ccr + build_cca + encode ({what}){note}",
            seconds,
            lambda: gateway_round(raw, local),
        )
    )
    results.append(
        _loop(
            f"codec: the gateway's round as it runs, read_ccr + build_cca + encode ({what}){note}",
            seconds,
            lambda: read_round(raw, local),
        )
    )
    # the traffic generator's side: the CCA it reads for each CCR (its CPU shares the machine)
    cca = gateway_round(raw, local)
    if read_cca(cca) != parse_cca(decode(cca)):
        raise AssertionError("the CCA reader does not read the bench's CCA as parse_cca does")
    answer = f"its CCA, {len(cca)} B"
    results.append(
        _loop(
            f"codec: the generator's reading of a CCA, decode + parse_cca ({answer}){note}",
            seconds,
            lambda: parse_cca(decode(cca)),
        )
    )
    results.append(
        _loop(
            f"codec: the generator's reading as it runs, read_cca ({answer}){note}",
            seconds,
            lambda: read_cca(cca),
        )
    )
    return results
