"""The Gy traffic generator over real TCP against a fake Gy server on 127.0.0.1.

`FakeGy` is a stand-in for the real Diameter gateway (DGW), which has its own end-to-end tests:
it only answers, with the codec and `PeerConnection`, as a credit-control server would, and
records every CCR so that the tests can check what the generator sent. It grants what was
asked (or a default quota for an empty Requested-Service-Unit), answers every 10th CCR-U with
Final-Unit-Indication and every 13th with 4012, and refuses MSISDNs ending in 9 with 5030 on
the CCR-I.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import socket
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcelly.diameter import doic
from cellcelly.diameter.codec import Avp, Message
from cellcelly.diameter.constants import Cmd, Code, Code3gpp, RequestType, Result
from cellcelly.diameter.peer import LocalPeer, PeerConnection
from cellcelly.traffic.generator import (
    BEHIND_LIMIT_MS,
    ProgressPrinter,
    Snapshot,
    TrafficConfig,
    TrafficReport,
    parse_mix,
    run_traffic,
)
from cellcelly.traffic.processes import run_processes

pytestmark = pytest.mark.integration

UNITS = (Code.CC_TIME, Code.CC_TOTAL_OCTETS, Code.CC_SERVICE_SPECIFIC_UNITS)
DEFAULT_GRANT = {Code.CC_TIME: 300, Code.CC_TOTAL_OCTETS: 10 * 2**20, Code.CC_SERVICE_SPECIFIC_UNITS: 1}
CONTEXT_UNIT = {
    "32260@3gpp.org": Code.CC_TIME,
    "32251@3gpp.org": Code.CC_TOTAL_OCTETS,
    "32274@3gpp.org": Code.CC_SERVICE_SPECIFIC_UNITS,
}
VALIDITY = 600


@dataclass
class Seen:
    """One CCR as the server read it, and what it answered."""

    kind: int
    number: int
    msisdn: str | None
    context: str
    rating_group: int | None
    requested: int | None  # None: empty RSU, -1: no RSU
    used: int
    destination: str
    at: float
    result: int = 0
    granted: int = 0
    final: bool = False


def _amount(group: Avp | None) -> int | None:
    for child in group.children or () if group is not None else ():
        if child.code in UNITS:
            return child.as_u32() if child.code == Code.CC_TIME else child.as_u64()
    return None


def _destination(msg: Message) -> str:
    for avp in msg.walk():
        if avp.code in (Code3gpp.CALLED_PARTY_ADDRESS, Code3gpp.ADDRESS_DATA) and avp.vendor:
            return avp.as_str()
    return ""


class FakeGy:
    def __init__(
        self,
        answer: bool = True,
        drop_after: int | None = None,
        validity: int = VALIDITY,
        garble_every: int | None = None,
    ) -> None:
        self.local = LocalPeer("fake-gy.test", "cellcelly.local")
        self.garble_every = garble_every  # every n-th answer's first AVP claims more than is there
        self.garbled = 0
        self.validity = validity
        self.answer = answer
        self.drop_after = drop_after
        self.sessions: dict[str, list[Seen]] = defaultdict(list)
        self.conns: list[PeerConnection] = []
        self.ccrs = self.updates = 0
        self.port = 0
        self.report: doic.OverloadReport | None = None  # DOIC: told to the clients that understand it
        self.understood = 0  # CCRs that said OC-Supported-Features
        self.server: asyncio.Server | None = None

    def protocol(self) -> PeerConnection:
        conn = PeerConnection(self.local, self.handle)
        self.conns.append(conn)
        return conn

    async def start(self) -> None:
        self.server = await asyncio.get_running_loop().create_server(self.protocol, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for conn in self.conns:
            conn.close()
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in self.conns)), 5)

    def handle(self, conn: PeerConnection, ccr: Message) -> Message | bytes | None:
        assert ccr.code == Cmd.CREDIT_CONTROL
        self.ccrs += 1
        if self.drop_after is not None and self.ccrs > self.drop_after:
            conn.close()  # the server goes away mid-run: the answers it gave go out first
            return None
        if not self.answer:
            return None
        sub = ccr.find(Code.SUBSCRIPTION_ID)
        data = sub.find(Code.SUBSCRIPTION_ID_DATA) if sub is not None else None
        [mscc] = ccr.find_all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
        rg = mscc.find(Code.RATING_GROUP)
        rsu = mscc.find(Code.REQUESTED_SERVICE_UNIT)
        context = ccr.find(Code.SERVICE_CONTEXT_ID)
        kind_avp, number_avp = ccr.find(Code.CC_REQUEST_TYPE), ccr.find(Code.CC_REQUEST_NUMBER)
        assert context is not None and kind_avp is not None and number_avp is not None
        seen = Seen(
            kind=kind_avp.as_i32(),
            number=number_avp.as_u32(),
            msisdn=data.as_str() if data is not None else None,
            context=context.as_str(),
            rating_group=rg.as_u32() if rg is not None else None,
            requested=-1 if rsu is None else _amount(rsu),
            used=sum(_amount(u) or 0 for u in mscc.find_all(Code.USED_SERVICE_UNIT)),
            destination=_destination(ccr),
            at=asyncio.get_running_loop().time(),
        )
        sid = ccr.session_id
        assert sid is not None
        self.sessions[sid].append(seen)
        code, mscc_code, grant, final = Result.SUCCESS, Result.SUCCESS, 0, False
        if seen.kind == RequestType.INITIAL and (seen.msisdn or "").endswith("9"):
            code = mscc_code = Result.USER_UNKNOWN
        elif seen.kind != RequestType.TERMINATION:
            if seen.kind == RequestType.UPDATE:
                self.updates += 1
                final = self.updates % 10 == 0
                if self.updates % 13 == 0:
                    code = mscc_code = Result.CREDIT_LIMIT_REACHED
            if code == Result.SUCCESS:
                unit = CONTEXT_UNIT[seen.context]
                grant = seen.requested if seen.requested and seen.requested > 0 else DEFAULT_GRANT[unit]
        seen.result, seen.granted, seen.final = code, grant, final
        avps = [
            Avp.utf8(Code.SESSION_ID, sid),
            Avp.u32(Code.RESULT_CODE, code),
            *self.local.identity(),
            Avp.u32(Code.AUTH_APPLICATION_ID, 4),
            Avp.i32(Code.CC_REQUEST_TYPE, seen.kind),
            Avp.u32(Code.CC_REQUEST_NUMBER, seen.number),
        ]
        if code != Result.USER_UNKNOWN:
            children = [Avp.u32(Code.RATING_GROUP, seen.rating_group or 0)]
            if grant:
                unit = CONTEXT_UNIT[seen.context]
                value = Avp.u32(unit, grant) if unit == Code.CC_TIME else Avp.u64(unit, grant)
                children += [
                    Avp.grouped(Code.GRANTED_SERVICE_UNIT, [value]),
                    Avp.u32(Code.VALIDITY_TIME, self.validity),
                ]
            if seen.kind != RequestType.TERMINATION:  # on CCR-T the command's Result-Code applies
                children.append(Avp.u32(Code.RESULT_CODE, mscc_code))
            if final:
                children.append(Avp.grouped(Code.FINAL_UNIT_INDICATION, [Avp.i32(Code.FINAL_UNIT_ACTION, 0)]))
            avps.append(Avp.grouped(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children))
        if doic.understands(ccr):
            self.understood += 1
            avps.append(doic.supported())
            if self.report is not None:
                avps.append(doic.olr(self.report))
        if self.garble_every and self.ccrs % self.garble_every == 0:
            self.garbled += 1
            frame = bytearray(ccr.answer(avps).encode())
            frame[25:28] = b"\xff\xff\xff"  # the Session-Id's length
            return bytes(frame)
        return ccr.answer(avps)


@pytest.fixture
async def gy() -> AsyncIterator[FakeGy]:
    server = FakeGy()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(port: int, **kwargs: object) -> TrafficConfig:
    base: dict[str, object] = {"port": port, "rate": 300.0, "duration": 1.5, "subscribers": 500}
    base.update(kwargs)
    return TrafficConfig(**base)  # type: ignore[arg-type]


def check_session(sid: str, seen: list[Seen]) -> None:
    """A session as the server saw it must be a valid credit-control dialogue."""
    where = f"session {sid}: {seen}"
    assert [s.number for s in seen] == list(range(len(seen))), where
    first = seen[0]
    assert first.msisdn is not None and first.msisdn.startswith("905"), where
    if first.kind == RequestType.EVENT:
        assert len(seen) == 1 and first.context == "32274@3gpp.org", where
        assert first.requested == 1 and first.used == 0, where
        return
    assert first.kind == RequestType.INITIAL and first.requested is None and first.used == 0, where
    if first.result != Result.SUCCESS:
        assert len(seen) == 1, f"no CCR-U/T after a failed CCR-I: {where}"
        return
    assert len(seen) >= 2 and seen[-1].kind == RequestType.TERMINATION, where
    assert all(s.kind == RequestType.UPDATE for s in seen[1:-1]), where
    assert len(seen) - 2 <= 4, where  # updates=(2, 4)
    ended_early = False
    for before, report in zip(seen, seen[1:], strict=False):
        assert report.msisdn == first.msisdn and report.context == first.context, where
        assert report.rating_group == first.rating_group, where
        assert report.used <= before.granted, f"used more than granted: {where}"
        if before.result != Result.SUCCESS or before.final:
            assert report.kind == RequestType.TERMINATION, f"CCR-T must follow FUI/failure: {where}"
            ended_early = True
        if before.result == Result.SUCCESS:
            assert report.used >= math.ceil(before.granted * 0.5), f"reports >= 50% of a grant: {where}"
        else:
            assert report.used == 0, where
        if report.kind == RequestType.UPDATE:
            assert report.requested is None, where  # asks for more (server default)
        else:
            assert report.requested == -1, where  # CCR-T: no RSU
    if not ended_early:
        assert 2 <= len(seen) - 2, where


async def test_sessions_against_a_fake_gy_server(gy: FakeGy) -> None:
    snapshots: list[Snapshot] = []
    # every session may be in flight at once: shedding has its own test, and a runner that stalls
    # this process for a second (CI once shed 146 of 450 so) must not turn this one's counts
    config = _config(gy.port, duration=1.5, rate=300.0, connections=4, max_in_flight=450)
    report = await run_traffic(config, snapshots.append)

    # nothing lost: every CCR the generator sent was read by the server and answered
    assert report.requests == gy.ccrs == sum(len(s) for s in gy.sessions.values())
    assert report.answers == report.requests
    assert (report.timeouts, report.errors) == (0, 0)
    expected = round(config.duration * config.rate)
    assert report.sessions_started == len(gy.sessions) == expected
    assert report.sessions_completed == expected
    assert (report.sessions_shed, report.sessions_aborted) == (0, 0)
    assert report.connections == 4 and sum(len(c.remote_host) > 0 for c in gy.conns) == 4

    for sid, seen in gy.sessions.items():
        check_session(sid, seen)

    # the server's answers, counted the same way by the generator
    answered = Counter(s.result for seen in gy.sessions.values() for s in seen)
    assert report.result_counts == dict(answered)
    assert report.result_counts[Result.USER_UNKNOWN] > 0
    assert report.mscc_result_counts[Result.CREDIT_LIMIT_REACHED] > 0
    assert Result.USER_UNKNOWN not in report.mscc_result_counts  # those CCAs carry no MSCC
    msccs = sum(1 for seen in gy.sessions.values() for s in seen if s.result != Result.USER_UNKNOWN)
    assert sum(report.mscc_result_counts.values()) == msccs
    kinds = Counter(seen[0].context for seen in gy.sessions.values())
    assert set(kinds) == set(CONTEXT_UNIT)
    assert sorted(report.service_counts.values()) == sorted(kinds.values())
    assert any(s.kind == RequestType.TERMINATION and s.used > 0 for x in gy.sessions.values() for s in x)
    early = [x for x in gy.sessions.values() if any(s.final for s in x)]
    assert early, "no session met a Final-Unit-Indication"
    destinations = [x[0].destination for x in gy.sessions.values() if x[0].destination]
    assert any(d.startswith("tel:+90555") or d.startswith("90555") for d in destinations)
    assert all(d.removeprefix("tel:+")[:5] in ("90555", "49151") for d in destinations)

    # latency and pace
    assert 0 < report.p50_ms <= report.p95_ms <= report.p99_ms <= report.max_ms < config.timeout * 1000
    starts = sorted(seen[0].at for seen in gy.sessions.values())
    # the upper bound allows a loaded CI machine's scheduling delay on the last start (2.54 s seen)
    assert 1.2 <= starts[-1] - starts[0] <= 3.0, "sessions were not spread over the run (open loop)"
    assert (expected - 1) / config.rate <= report.duration < config.duration + 2.0  # last start: slot 449
    assert report.ccr_per_s == pytest.approx(report.answers / report.duration)
    assert report.ccr_per_s > 0.6 * report.requests / config.duration

    # progress: about once a second, and once at the end with the totals
    assert 1 <= len(snapshots) <= 4
    assert [s.elapsed for s in snapshots] == sorted(s.elapsed for s in snapshots)
    assert snapshots[-1].requests == report.requests and snapshots[-1].in_flight == 0
    assert snapshots[0].rate > 0 and snapshots[0].p99_ms > 0

    data = report.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["result_counts"]["5030"] == report.result_counts[5030]
    text = report.render()
    assert "p99" in text and "5030" in text and f"{report.requests} sent" in text


async def test_a_seed_fixes_the_sessions(gy: FakeGy) -> None:
    async def plans() -> Counter[tuple[str | None, str, str]]:
        gy.sessions.clear()
        await run_traffic(_config(gy.port, duration=0.3, rate=200.0, seed=7, connections=2))
        return Counter((x[0].msisdn, x[0].context, x[0].destination) for x in gy.sessions.values())

    first = await plans()
    assert first == await plans()
    assert sum(first.values()) == 60


async def test_a_silent_server_times_out_and_sheds_load() -> None:
    server = FakeGy(answer=False)
    await server.start()
    try:
        config = _config(server.port, duration=0.5, rate=200.0, timeout=0.3, max_in_flight=10, connections=1)
        report = await asyncio.wait_for(run_traffic(config), 10)
    finally:
        await server.stop()
    assert report.answers == 0 and report.timeouts == report.requests > 0
    assert report.sessions_started + report.sessions_shed == 100
    assert report.sessions_shed > 0 and report.sessions_started <= 10 * 3
    assert report.sessions_aborted == report.sessions_started and report.sessions_completed == 0


async def test_a_garbled_answer_is_an_error_at_once_and_the_rest_are_read() -> None:
    """The generator reads answers from their bytes (`cca_reader`); one it cannot read is decoded,
    which refuses it: counted as an error when it comes, not as a timeout later."""
    server = FakeGy(garble_every=7)
    await server.start()
    try:
        config = _config(server.port, duration=0.5, rate=200.0, connections=2, max_in_flight=200)
        report = await asyncio.wait_for(run_traffic(config), 10)
    finally:
        await server.stop()
    assert server.garbled > 0 and report.errors == server.garbled and report.timeouts == 0
    assert report.answers == report.requests == server.ccrs
    assert sum(report.result_counts.values()) == report.answers - server.garbled
    assert report.sessions_aborted == server.garbled


async def test_losing_the_server_mid_run_ends_the_run() -> None:
    server = FakeGy(drop_after=40)
    await server.start()
    try:
        config = _config(server.port, duration=1.0, rate=200.0, connections=1)
        report = await asyncio.wait_for(run_traffic(config), 10)
    finally:
        await server.stop()
    assert report.answers == 40 and report.errors >= 1 and report.timeouts == 0
    assert report.sessions_aborted >= 1
    assert report.sessions_started + report.sessions_shed == 200
    assert report.sessions_started == report.sessions_completed + report.sessions_aborted


async def test_an_overload_report_holds_back_new_sessions_and_never_their_updates(gy: FakeGy) -> None:
    """DOIC (RFC 7683), the loss algorithm: a server reporting 60% less has about 60% of the new
    sessions after its first answer held back; the sessions started run to their end."""
    gy.report = doic.OverloadReport(5, 60, 30)
    config = _config(gy.port, duration=1.5, rate=300.0, connections=4, max_in_flight=450)
    report = await run_traffic(config)
    assert report.requests == report.answers == gy.ccrs == gy.understood  # each CCR said it understands
    assert report.sessions_started + report.sessions_abated == 450
    assert 0.5 * 450 < report.sessions_abated < 0.7 * 450  # 60% of 449 draws: mean 269, sd 10
    assert report.sessions_started == len(gy.sessions) == report.sessions_completed
    for sid, seen in gy.sessions.items():
        check_session(sid, seen)  # every update and terminate of a started session went out
    assert "abated (DOIC)" in report.render() and report.as_dict()["sessions_abated"] > 0


async def test_without_doic_or_once_a_report_ends_nothing_is_held_back(gy: FakeGy) -> None:
    gy.report = doic.OverloadReport(5, 60, 30)
    config = _config(gy.port, duration=0.5, rate=300.0, max_in_flight=150, doic=False)
    report = await run_traffic(config)
    assert report.sessions_abated == 0 and report.sessions_started == 150 and gy.understood == 0
    gy.report = doic.OverloadReport(6, 0, 0)  # ended
    report = await run_traffic(_config(gy.port, duration=0.5, rate=300.0, max_in_flight=150, seed=2))
    assert report.sessions_abated == 0 and report.sessions_started == 150 and gy.understood > 0


async def test_two_processes_offer_the_rate_together_and_report_as_one(gy: FakeGy) -> None:
    # no shedding, as in the one-process test: a stalled runner must not change the counts
    config = _config(gy.port, duration=1.5, rate=300.0, connections=4, max_in_flight=450)
    report = await asyncio.wait_for(asyncio.to_thread(run_processes, config, 2), 120)

    # nothing lost, the whole rate offered, over every connection, each dialogue valid
    assert report.processes == 2 and report.connections == 4 and len(gy.conns) == 4
    assert report.requests == report.answers == gy.ccrs == sum(len(x) for x in gy.sessions.values())
    assert report.sessions_started == len(gy.sessions) == 450 and report.sessions_completed == 450
    for sid, seen in gy.sessions.items():
        check_session(sid, seen)
    assert report.result_counts == dict(Counter(s.result for x in gy.sessions.values() for s in x))
    # two processes (two Session-Id prefixes), two seeds, one schedule: both start at once
    by_process: dict[str, list[Seen]] = defaultdict(list)
    for sid, seen in gy.sessions.items():
        by_process[sid.rsplit(";", 1)[0]].append(seen[0])
    assert sorted(len(firsts) for firsts in by_process.values()) == [225, 225]
    firsts = [sorted(s.at for s in x) for x in by_process.values()]
    assert abs(firsts[0][0] - firsts[1][0]) < 0.5, "the processes did not start together"
    assert all(1.2 <= x[-1] - x[0] <= 3.0 for x in firsts)
    draws = [Counter(s.msisdn for s in x) for x in by_process.values()]
    assert draws[0] != draws[1]
    assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms < config.timeout * 1000
    assert not report.generator_bound


async def test_a_process_that_cannot_connect_fails_the_run() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match="cannot open Diameter"):
        await asyncio.wait_for(asyncio.to_thread(run_processes, _config(port, duration=0.5), 2), 120)


async def test_a_generator_too_busy_to_keep_its_schedule_says_so(gy: FakeGy) -> None:
    """The ticker's lateness is measured: a loop kept busy 20 ms of every 40 makes the run
    `generator_bound`, and its report says the load was the generator's limit; a free one does not."""
    free = await run_traffic(_config(gy.port, duration=1.0, rate=300.0))
    assert free.behind_p99_ms < BEHIND_LIMIT_MS and not free.generator_bound

    async def hog() -> None:
        while True:
            time.sleep(0.02)  # the loop itself is busy: nothing else runs meanwhile
            await asyncio.sleep(0.02)

    hogging = asyncio.create_task(hog())
    try:
        busy = await run_traffic(_config(gy.port, duration=1.0, rate=300.0))
    finally:
        hogging.cancel()
    assert busy.behind_p99_ms > BEHIND_LIMIT_MS and busy.generator_bound
    assert "the generator's limit" in busy.render()


async def test_usage_is_reported_before_the_validity_time_ends() -> None:
    """With time_scale, a session uses its grant in (scaled) real time: a 300 s voice grant
    valid for 1 s is reported before that second is over, with only what was used by then."""
    server = FakeGy(validity=1)
    await server.start()
    try:
        config = _config(
            server.port, duration=0.2, rate=20.0, mix=(1.0, 0.0, 0.0), updates=(1, 1), time_scale=0.01
        )
        report = await asyncio.wait_for(run_traffic(config), 20)
    finally:
        await server.stop()
    assert report.sessions_completed == report.sessions_started == 4
    assert report.timeouts == report.errors == 0
    for seen in server.sessions.values():
        if seen[0].result != Result.SUCCESS:
            continue
        assert [s.kind for s in seen] == [RequestType.INITIAL, RequestType.UPDATE, RequestType.TERMINATION]
        for before, after in zip(seen, seen[1:], strict=False):
            assert after.at - before.at < 1.0, "usage reported after the grant's Validity-Time"
            assert after.at - before.at > 0.5, "the session did not use its grant over time"
            # 300 s at time_scale 0.01 would take >= 1.5 s: cut at the deadline, less than half used
            assert 0 < after.used < before.granted // 2


async def test_no_server_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        await run_traffic(_config(port, duration=0.1))


async def test_the_command_line(gy: FakeGy) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cellcelly.cli",
        "traffic",
        "--port",
        str(gy.port),
        "--rate",
        "100",
        "--duration",
        "1.2",
        "--connections",
        "2",
        "--mix",
        "1:0:1",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["sessions_started"] == 120 and report["answers"] == report["requests"] > 0
    assert set(report["service_counts"]) == {"voice", "sms"}
    lines = err.decode().splitlines()
    assert any("CCA/s" in line and "p99" in line for line in lines)  # progress, a line each (no TTY)
    assert "\r" not in err.decode()


async def test_the_command_line_with_two_processes(gy: FakeGy) -> None:
    args = ["traffic", "--port", str(gy.port), "--rate", "100", "--duration", "1.2", "--processes", "2"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cellcelly.cli", *args, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["processes"] == 2 and report["sessions_started"] == 120 == len(gy.sessions)
    assert report["answers"] == report["requests"] == gy.ccrs
    # the merged lateness is reported and judged; whether it stays under the limit is the machine's
    # (a busy CI runner's 60 ticks a process once had a p99 over it), tested apart with a hogged loop
    assert report["behind_p99_ms"] >= 0
    assert report["generator_bound"] is (report["behind_p99_ms"] > BEHIND_LIMIT_MS)
    last = [line for line in err.decode().splitlines() if "CCA/s" in line][-1]
    assert f"sent {gy.ccrs:>9}" in last  # the progress of both processes, summed
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cellcelly.cli", "traffic", "--processes", "0", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(bad.communicate(), 60)
    assert bad.returncode == 2 and b"--processes" in err


def test_mix_and_config_validation() -> None:
    assert parse_mix("40:40:20") == (40.0, 40.0, 20.0)
    assert parse_mix("1:0:0.5") == (1.0, 0.0, 0.5)
    for bad in ("40:60", "a:b:c", "0:0:0", "-1:1:1"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    with pytest.raises(ValueError):
        TrafficConfig(rate=0)
    with pytest.raises(ValueError):
        TrafficConfig(updates=(3, 1))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _snap(elapsed: float, requests: int) -> Snapshot:
    return Snapshot(elapsed, requests, requests, 100.0, 1.5, 3, 10, 0, 0, 0)


@pytest.mark.parametrize("stream_type", [io.StringIO, _Tty])
def test_progress_printer(stream_type: Callable[[], io.StringIO]) -> None:
    stream = stream_type()
    printer = ProgressPrinter(stream)
    printer(_snap(1.0, 100))
    printer(_snap(2.0, 200))
    printer.close()
    text = stream.getvalue()
    if stream.isatty():
        assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    else:
        assert "\r" not in text and text.count("\n") == 2
    assert "p99    1.50 ms" in text


def test_report_percentiles_are_nearest_rank() -> None:
    from cellcelly.traffic.generator import percentile_ms

    values = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    assert [percentile_ms(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile_ms([], 99) == 0.0
    report = TrafficReport(1, 1, 1, 1, 0, 0, 1.0, 1.0, 1, 2, 3, 4, {2001: 1}, {2001: 1}, 0, 0)
    assert report.as_dict()["result_counts"] == {"2001": 1}


@given(
    st.tuples(*[st.sampled_from([0.0, 0.2, 1.0, 40.0])] * 3).filter(lambda mix: sum(mix) > 0),
    st.tuples(st.integers(0, 3), st.integers(0, 3)).map(sorted),
    st.integers(1, 10_000),
    st.integers(0, 2**32),
)
@settings(max_examples=60, deadline=None)
def test_each_plan_draw_stays_within_its_config(
    mix: tuple[float, float, float], updates: list[int], subscribers: int, seed: int
) -> None:
    """`_Run.plan`'s draws: a service of weight 0 is never drawn, the others in proportion;
    subscribers, destinations, updates and fractions within their ranges; the same seed the same
    plans (e2e/scenario.py's runs count on the seed's sessions: a subscriber's wallet is spent by
    them before the call that must be cut off and told by RAR)."""
    from cellcelly.traffic.generator import SERVICES, _Run

    config = TrafficConfig(mix=mix, updates=(updates[0], updates[1]), subscribers=subscribers, seed=seed)

    async def plans() -> list[Any]:
        run = _Run(config, None)
        return [run.plan(i) for i in range(300)]

    drawn = asyncio.run(plans())
    assert drawn == asyncio.run(plans())
    counts = Counter(p.service for p in drawn)
    for service, weight in zip(SERVICES, mix, strict=True):
        share = weight / sum(mix)
        assert (counts[service] == 0) == (share == 0) or 0 < share < 0.02
        assert abs(counts[service] / 300 - share) < 0.15
    for p in drawn:
        assert 0 <= int(p.msisdn) - config.first_msisdn < subscribers
        if p.service == "sms":
            assert p.updates == 0 and p.fractions == ()
        else:
            assert updates[0] <= p.updates <= updates[1] and len(p.fractions) == p.updates + 1
            assert all(0.5 <= f < 1.0 for f in p.fractions)
        if p.service != "data":
            assert p.destination[:5] in ("49151", "90555") and len(p.destination) == 12
