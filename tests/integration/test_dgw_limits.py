"""The Diameter edge refuses what the system of record cannot hold (`domain/limits.py`):
5004 DIAMETER_INVALID_AVP_VALUE with the offending AVP in Failed-AVP, nothing charged; at the
limit the request is charged and its usage reaches the record (the SF does not stall).

Issue 12 §2: a CCR-U with CC-Total-Octets = 2^63 was answered 2001 and then failed every batch
of the SF. Through the stack `make run` starts, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gy_client import ccr_head

from cellcelly.deploy.embedded import DEMO, EmbeddedStack
from cellcelly.diameter.codec import Avp, Message
from cellcelly.diameter.constants import APP_CREDIT_CONTROL, CONTEXT_PS, FLAG_P, FLAG_R, Cmd, Code, Result
from cellcelly.diameter.peer import PeerConnection
from cellcelly.domain.limits import MAX_REQUEST_NUMBER, MAX_SESSION_ID, MAX_UNITS
from cellcelly_testing import running_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def stack(data_dir: Path) -> AsyncIterator[EmbeddedStack]:
    async with running_stack(data_dir, dgw_allowed_peers="*", ocs_api_key="k" * 32) as running:
        yield running


def data_ccr(
    session: str, kind: int, number: int, *units: list[Avp], rsu: list[Avp] | None = None
) -> Message:
    """A data CCR; each of `units` is one Used-Service-Unit's children."""
    mscc = [Avp.u32(Code.RATING_GROUP, 10)]
    if rsu is not None:
        mscc.append(Avp.grouped(Code.REQUESTED_SERVICE_UNIT, rsu))
    mscc += [Avp.grouped(Code.USED_SERVICE_UNIT, children) for children in units]
    avps = [
        *ccr_head(session, kind, number, DEMO.msisdn, CONTEXT_PS),
        Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, mscc),
    ]
    return Message(Cmd.CREDIT_CONTROL, FLAG_R | FLAG_P, APP_CREDIT_CONTROL, avps=avps)


def octets(total: int) -> list[Avp]:
    return [Avp.u64(Code.CC_TOTAL_OCTETS, total)]


def failed_avp(answer: Message) -> Avp:
    failed = answer.find(Code.FAILED_AVP)
    assert failed is not None and failed.children, answer
    return failed.children[0]


def refused(answer: Message, code: int) -> Avp:
    """5004 with Failed-AVP; returns the AVP it names."""
    assert answer.result_code == Result.INVALID_AVP_VALUE, answer
    assert answer.find(Code.MULTIPLE_SERVICES_CREDIT_CONTROL) is None  # nothing was charged
    avp = failed_avp(answer)
    assert avp.code == code, avp
    return avp


async def start(peer: PeerConnection, session: str) -> None:
    assert (await peer.request(data_ccr(session, 1, 0, rsu=[]))).result_code == Result.SUCCESS


async def test_the_reported_two_to_the_63_octets_is_refused_5004(
    stack: EmbeddedStack,
    peer: PeerConnection,
) -> None:
    await start(peer, "lim;issue")
    wallet = stack.backends.store.get(DEMO.msisdn).wallet  # type: ignore[union-attr]
    answer = await peer.request(data_ccr("lim;issue", 2, 1, octets(2**63)))
    assert refused(answer, Code.CC_TOTAL_OCTETS).as_u64() == 2**63
    assert stack.backends.store.get(DEMO.msisdn).wallet == wallet  # type: ignore[union-attr]
    # the session goes on: the same request number with a sane report is charged
    assert (await peer.request(data_ccr("lim;issue", 2, 1, octets(1000)))).result_code == Result.SUCCESS


@pytest.mark.parametrize(
    ("name", "units", "code"),
    [
        ("total", [octets(MAX_UNITS + 1)], Code.CC_TOTAL_OCTETS),
        ("input", [[Avp.u64(Code.CC_INPUT_OCTETS, MAX_UNITS + 1)]], Code.CC_INPUT_OCTETS),
        ("output", [[Avp.u64(Code.CC_OUTPUT_OCTETS, 2**64 - 1)]], Code.CC_OUTPUT_OCTETS),
        (
            "input+output",
            [[Avp.u64(Code.CC_INPUT_OCTETS, MAX_UNITS), Avp.u64(Code.CC_OUTPUT_OCTETS, 1)]],
            Code.USED_SERVICE_UNIT,
        ),
        ("two USUs", [octets(MAX_UNITS), octets(1)], Code.USED_SERVICE_UNIT),
    ],
)
async def test_units_one_past_the_limit_are_refused_with_the_avp_at_fault(
    peer: PeerConnection,
    name: str,
    units: list[list[Avp]],
    code: int,
) -> None:
    await start(peer, f"lim;{name}")
    refused(await peer.request(data_ccr(f"lim;{name}", 2, 1, *units)), code)


async def test_a_requested_amount_past_the_limit_is_refused(peer: PeerConnection) -> None:
    answer = await peer.request(data_ccr("lim;rsu", 1, 0, rsu=octets(MAX_UNITS + 1)))
    refused(answer, Code.CC_TOTAL_OCTETS)


async def test_a_session_id_one_past_the_limit_is_refused(peer: PeerConnection) -> None:
    long = "s" * (MAX_SESSION_ID + 1)
    assert refused(await peer.request(data_ccr(long, 1, 0, rsu=[])), Code.SESSION_ID).as_str() == long
    assert refused(await peer.request(data_ccr("", 1, 0, rsu=[])), Code.SESSION_ID).as_str() == ""


async def test_at_every_limit_the_request_is_charged_and_reaches_the_record(
    stack: EmbeddedStack,
    peer: PeerConnection,
) -> None:
    """The longest Session-Id, the largest request number and the most units in one report."""
    sid = "s" * (MAX_SESSION_ID - 4) + ";lim"
    await start(peer, sid)
    split = [[Avp.u64(Code.CC_INPUT_OCTETS, MAX_UNITS // 2), Avp.u64(Code.CC_OUTPUT_OCTETS, MAX_UNITS // 4)]]
    answer = await peer.request(data_ccr(sid, 2, 7, octets(MAX_UNITS // 4), *split))
    assert answer.result_code == Result.SUCCESS, answer
    answer = await peer.request(data_ccr(sid, 3, MAX_REQUEST_NUMBER, octets(MAX_UNITS)))
    assert answer.result_code == Result.SUCCESS, answer
    records = stack.backends.records
    for _ in range(200):  # the stack's own relay and SF carry the usage to the record
        usage = {
            (e.request_number, e.units) for e in records.usage_for(DEMO.msisdn, 100) if e.session_id == sid
        }
        if len(usage) == 2:
            break
        await asyncio.sleep(0.05)
    assert usage == {(7, MAX_UNITS), (MAX_REQUEST_NUMBER, MAX_UNITS)}
