"""Gy traffic generator: real Diameter credit-control sessions against the gateway (DGW).

Open loop: a ticker starts sessions on a fixed schedule (`rate` a second) whatever the server's
speed, so slow answers show as latency rather than as a lower offered load. A bound on sessions
in flight keeps a stalled server from making the generator explode; a session that would exceed
it is not started and is counted as *shed*.

A voice or data session is CCR-I (server default quota), then `updates` CCR-Us, each reporting
between 50% and 100% of the last grant and asking for more, then a CCR-T reporting the last
usage. It ends early on Final-Unit-Indication (the CCR-T reports what the final grant was used
for) or on a failure: after a failed CCR-I the session does not exist (RFC 8506 §5.2), so no
CCR-T; after a failed CCR-U a CCR-T closes it. An SMS is one CCR-E (direct debiting of 1 msg).
A timeout or a transport error ends a session where it stands (counted as aborted; no
retransmission, no CCR-T).

Every random choice is drawn by the ticker from one `random.Random(seed)`, in start order, so
a seed gives the same sessions whatever the answers' timing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from cellcelly.diameter import doic
from cellcelly.diameter.cca_reader import read_cca
from cellcelly.diameter.ccr import CcaResult, CcrTemplate, ServiceName, parse_cca
from cellcelly.diameter.codec import DecodeError, Message, decode
from cellcelly.diameter.constants import RequestType, Result
from cellcelly.diameter.peer import LocalPeer, PeerConnection, State, connect

log = logging.getLogger(__name__)

SERVICES: tuple[ServiceName, ServiceName, ServiceName] = ("voice", "data", "sms")
RATING_GROUPS: dict[str, int] = {"voice": 1, "data": 2, "sms": 3}
DATA_OCTETS_PER_SECOND = 1024 * 1024  # the pace a simulated data session uses its quota at
LONGEST_GRANT_SECONDS = 3600.0  # the catalogue's largest voice quota (for the auto drain time)
# the ticker's lateness (p99) past which a run measured the generator, not the server: its loop was
# too busy to start sessions on time, so the offered load was lower and burstier than asked
BEHIND_LIMIT_MS = 10.0
_OK = (int(Result.SUCCESS), int(Result.LIMITED_SUCCESS))


@dataclass
class TrafficConfig:
    host: str = "127.0.0.1"
    port: int = 3868
    rate: float = 1000.0  # sessions (and SMS events) started per second
    duration: float = 10.0  # seconds of starting sessions; the ones in flight then finish
    subscribers: int = 1000
    first_msisdn: int = 5320000000  # subscriber i is str(first_msisdn + i)
    mix: tuple[float, float, float] = (0.4, 0.4, 0.2)  # weights of voice, data, sms
    updates: tuple[int, int] = (2, 4)  # CCR-Us per session, inclusive range
    connections: int = 4
    origin_host: str = "traffic.cellcelly.local"
    origin_realm: str = "cellcelly.local"
    destination_realm: str = "cellcelly.local"
    seed: int = 1
    # real seconds per simulated second of use (data is used at DATA_OCTETS_PER_SECOND);
    # 0 = report at once, never wait between a grant and its report
    time_scale: float = 0.0
    timeout: float = 5.0  # per CCR
    max_in_flight: int = 0  # sessions; 0 = auto, see in_flight_bound()
    abroad: float = 0.1  # share of voice/SMS destinations abroad (49151...), the rest 90555...
    mcc_mnc: str = "28601"  # the visited network of data sessions (Turkey)
    drain: float | None = None  # seconds to let sessions finish after the last start; None = auto
    # RFC 7683 (DOIC): say OC-Supported-Features in every CCR and hold back the share of new
    # sessions a server's overload report asks for (counted as abated, never sent)
    doic: bool = True

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration < 0 or self.timeout <= 0 or self.time_scale < 0:
            raise ValueError("rate and timeout must be > 0, duration and time_scale >= 0")
        if self.subscribers < 1 or self.connections < 1 or self.max_in_flight < 0:
            raise ValueError("subscribers and connections must be >= 1, max_in_flight >= 0")
        if len(self.mix) != 3 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError("mix: three non-negative weights (voice, data, sms), not all zero")
        if len(self.updates) != 2 or not 0 <= self.updates[0] <= self.updates[1]:
            raise ValueError("updates: a range (low, high) with 0 <= low <= high")

    def in_flight_bound(self) -> int:
        """Sessions allowed in flight: `max_in_flight`, or a second's worth of sessions beyond
        what the sessions' own (scaled) usage time needs. With time_scale 0 a healthy session
        lasts a few round trips, so a second of backlog means the server (or this generator)
        is far behind: shedding then keeps latency finite and says so in the report."""
        if self.max_in_flight:
            return self.max_in_flight
        using = self.time_scale * LONGEST_GRANT_SECONDS * (self.updates[1] + 1)
        return max(64, math.ceil(self.rate * (1.0 + using)))

    def drain_seconds(self) -> float:
        if self.drain is not None:
            return self.drain
        steps = self.updates[1] + 2
        return self.timeout * steps + self.time_scale * LONGEST_GRANT_SECONDS * (steps - 1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    elapsed: float  # seconds since the first session started
    requests: int  # CCRs sent so far
    answers: int
    rate: float  # CCAs a second over the last interval
    p99_ms: float  # of every CCR so far (from a histogram, within ~6%)
    in_flight: int  # sessions
    sessions_started: int
    shed: int
    timeouts: int
    errors: int

    def line(self) -> str:
        return (
            f"{self.elapsed:6.1f}s  sent {self.requests:>9}  {self.rate:>8.0f} CCA/s  "
            f"p99 {self.p99_ms:7.2f} ms  in flight {self.in_flight:>5}  sessions {self.sessions_started:>8}"
            f"  shed {self.shed}  timeouts {self.timeouts}  errors {self.errors}"
        )


def percentile_ms(sorted_ns: list[int], p: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds (the benchmarks' rule)."""
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, max(0, math.ceil(p / 100 * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1_000_000


def latency_fields(sorted_ns: list[int]) -> tuple[float, float, float, float]:
    """A report's p50, p95, p99 and max (ms) from every answer's latency, sorted (one run's or the
    merged runs' of several processes)."""
    top = sorted_ns[-1] / 1e6 if sorted_ns else 0.0
    return percentile_ms(sorted_ns, 50), percentile_ms(sorted_ns, 95), percentile_ms(sorted_ns, 99), top


@dataclass
class TrafficReport:
    requests: int
    answers: int
    sessions_started: int
    sessions_completed: int  # the dialogue ran to its end, whatever the result codes
    sessions_aborted: int  # ended by a timeout or a transport error
    sessions_shed: int  # not started: too many in flight
    duration: float  # seconds from the first start until the last session ended
    ccr_per_s: float  # answers / duration
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    result_counts: dict[int, int]  # command-level Result-Code -> CCAs
    mscc_result_counts: dict[int, int]  # MSCC-level Result-Code -> MSCCs
    timeouts: int
    errors: int
    target_rate: float = 0.0
    connections: int = 0
    behind_ms: float = 0.0  # how late the ticker started its latest session (generator overload)
    service_counts: dict[str, int] = field(default_factory=dict)  # sessions started per service
    behind_p99_ms: float = 0.0  # the ticker's lateness at its wake-ups, 99th percentile
    processes: int = 1
    sessions_abated: int = 0  # not started: a server's DOIC overload report asked for less

    @property
    def generator_bound(self) -> bool:
        """The generator fell behind its own schedule: the figures are its limit, not the server's."""
        return self.behind_p99_ms > BEHIND_LIMIT_MS

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answers": self.answers,
            "sessions_started": self.sessions_started,
            "sessions_completed": self.sessions_completed,
            "sessions_aborted": self.sessions_aborted,
            "sessions_shed": self.sessions_shed,
            "sessions_abated": self.sessions_abated,
            "duration_s": round(self.duration, 3),
            "ccr_per_s": round(self.ccr_per_s, 1),
            "latency_ms": {
                "p50": round(self.p50_ms, 3),
                "p95": round(self.p95_ms, 3),
                "p99": round(self.p99_ms, 3),
                "max": round(self.max_ms, 3),
            },
            "result_counts": {str(k): v for k, v in sorted(self.result_counts.items())},
            "mscc_result_counts": {str(k): v for k, v in sorted(self.mscc_result_counts.items())},
            "timeouts": self.timeouts,
            "errors": self.errors,
            "target_rate": self.target_rate,
            "connections": self.connections,
            "behind_ms": round(self.behind_ms, 3),
            "behind_p99_ms": round(self.behind_p99_ms, 3),
            "generator_bound": self.generator_bound,
            "processes": self.processes,
            "service_counts": dict(self.service_counts),
        }

    def render(self) -> str:
        def codes(counts: dict[int, int]) -> str:
            return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "-"

        services = ", ".join(f"{k} {v}" for k, v in self.service_counts.items()) or "-"
        behind = f"p99 {self.behind_p99_ms:.1f} ms, {self.behind_ms:.1f} ms at most"
        if self.generator_bound:
            behind += f" (over {BEHIND_LIMIT_MS:g} ms: the load was not offered; the generator's limit)"
        processes = f" from {self.processes} processes" if self.processes > 1 else ""
        return "\n".join(
            [
                f"Gy traffic: {self.target_rate:g} sessions/s offered on {self.connections} connection(s)"
                + processes,
                f"  duration        {self.duration:.2f} s",
                f"  CCRs            {self.requests} sent, {self.answers} answered"
                f"  ({self.ccr_per_s:.0f} CCR/s)",
                f"  latency         p50 {self.p50_ms:.2f} ms  p95 {self.p95_ms:.2f} ms"
                f"  p99 {self.p99_ms:.2f} ms  max {self.max_ms:.2f} ms",
                f"  sessions        {self.sessions_started} started ({services}),"
                f" {self.sessions_completed} completed, {self.sessions_aborted} aborted,"
                f" {self.sessions_shed} shed, {self.sessions_abated} abated (DOIC)",
                f"  Result-Code     {codes(self.result_counts)}",
                f"  MSCC results    {codes(self.mscc_result_counts)}",
                f"  timeouts        {self.timeouts}",
                f"  errors          {self.errors}",
                f"  ticker behind   {behind}",
            ]
        )


class _Histogram:
    """Log-linear buckets of microseconds (16 per power of two, so within ~6%): a cheap
    running p99 for the progress line; the report sorts the exact latencies instead."""

    def __init__(self) -> None:
        self.counts = [0] * 1024
        self.total = 0

    def add(self, us: int) -> None:
        if us < 32:
            idx = us
        else:
            shift = us.bit_length() - 5
            idx = min(1023, (shift << 4) + (us >> shift))
        self.counts[idx] += 1
        self.total += 1

    def percentile_ms(self, p: float) -> float:
        if not self.total:
            return 0.0
        rank = math.ceil(p / 100 * self.total)
        seen = 0
        for idx, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                if idx < 32:
                    return (idx + 1) / 1000
                shift = (idx >> 4) - 1
                return ((16 + (idx & 15) + 1) << shift) / 1000
        return 0.0


@dataclass(slots=True)
class _Plan:
    index: int
    service: ServiceName
    msisdn: str
    destination: str
    updates: int
    fractions: tuple[float, ...]  # one per report (updates + 1), in [0.5, 1]


@dataclass(slots=True)
class _Grant:
    ok: bool  # command and MSCC succeeded with units granted
    units: int
    deadline: float | None  # loop time the Validity-Time ends
    validity: float
    final: bool


class _Run:
    def __init__(self, config: TrafficConfig, progress: Callable[[Snapshot], None] | None) -> None:
        self.config = config
        self.progress = progress
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(config.seed)
        self.local = LocalPeer(
            config.origin_host, config.origin_realm, product_name="CellCelly traffic generator"
        )
        # every CCR's AVPs but a few encoded once (its CPU shares the machine with the server)
        self.template = CcrTemplate(
            self.local, config.destination_realm, [doic.supported()] if config.doic else []
        )
        self.sid_prefix = f"{config.origin_host};{int(time.time())};{os.urandom(4).hex()}"
        self.conns: list[PeerConnection] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.latencies: list[int] = []
        self.histogram = _Histogram()
        self.result_counts: Counter[int] = Counter()
        self.mscc_result_counts: Counter[int] = Counter()
        self.service_counts: Counter[str] = Counter()
        self.requests = self.answers = self.timeouts = self.errors = 0
        self.started = self.completed = self.aborted = self.shed = self.abated = 0
        self.abatement = doic.Abatement()  # the servers' overload reports (RFC 7683)
        self.abate_draws = random.Random(config.seed + 1)  # apart: the seed still fixes every plan
        self.behind = 0.0
        self.lateness: list[int] = []  # ns, at each wake-up of the ticker that found sessions due
        self.t0 = 0.0
        self.stopped = False

    # --- connections ------------------------------------------------------------------------------

    async def open(self) -> None:
        c = self.config
        results = await asyncio.gather(
            *(connect(c.host, c.port, self.local, timeout=c.timeout) for _ in range(c.connections)),
            return_exceptions=True,
        )
        self.conns = [r for r in results if isinstance(r, PeerConnection)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]

    async def close(self) -> None:
        await asyncio.gather(*(conn.disconnect() for conn in self.conns), return_exceptions=True)

    def _connection(self, index: int) -> PeerConnection | None:
        n = len(self.conns)
        for k in range(n):
            conn = self.conns[(index + k) % n]
            if conn.state is State.OPEN:
                return conn
        return None

    # --- one CCR ----------------------------------------------------------------------------------

    async def ccr(self, conn: PeerConnection, msg: Message) -> CcaResult | None:
        """Send, wait, measure, count; None when no usable answer came (timeout, transport)."""
        if conn.state is not State.OPEN:
            self.errors += 1
            return None
        self.requests += 1
        began = time.perf_counter_ns()
        try:
            frame = await conn.request_frame(msg, self.config.timeout)
        except TimeoutError:
            self.timeouts += 1
            return None
        except (ConnectionError, OSError):
            self.errors += 1
            return None
        elapsed = time.perf_counter_ns() - began
        self.answers += 1
        self.latencies.append(elapsed)
        self.histogram.add(elapsed // 1000)
        # read from its bytes (its CPU shares the machine with the servers it measures); what
        # that does not read (an error answer, an overload report, a final unit) is decoded
        result = read_cca(frame)
        if result is None:
            result = self._decoded(conn, frame)
            if result is None:
                return None
        self.result_counts[result.result_code] += 1
        for s in result.services:
            self.mscc_result_counts[s.result_code] += 1
        return result

    def _decoded(self, conn: PeerConnection, frame: bytes) -> CcaResult | None:
        try:
            answer = decode(frame)
            if self.config.doic:
                report = doic.read_report(answer)
                if report is not None:
                    self.abatement.heard(conn.remote_host, report, self.loop.time())
            return parse_cca(answer)
        except (DecodeError, ValueError, struct.error):
            log.warning("unreadable CCA", exc_info=True)
            self.errors += 1
            return None

    # --- sessions ---------------------------------------------------------------------------------

    def plan(self, index: int) -> _Plan:
        c, rng = self.config, self.rng
        service = rng.choices(SERVICES, weights=c.mix)[0]
        msisdn = str(c.first_msisdn + rng.randrange(c.subscribers))
        destination = ""
        if service != "data":
            prefix = "49151" if rng.random() < c.abroad else "90555"
            destination = f"{prefix}{rng.randrange(10_000_000):07d}"
        updates = rng.randint(c.updates[0], c.updates[1]) if service != "sms" else 0
        fractions = tuple(rng.uniform(0.5, 1.0) for _ in range(updates + 1)) if service != "sms" else ()
        return _Plan(index, service, msisdn, destination, updates, fractions)

    def _grant(self, result: CcaResult, rating_group: int) -> _Grant:
        mscc = result.service(rating_group)
        if mscc is None and len(result.services) == 1:
            mscc = result.services[0]
        if mscc is None:
            return _Grant(False, 0, None, 0.0, False)
        units = mscc.granted or 0
        ok = result.ok and mscc.result_code in _OK and units > 0
        validity = float(mscc.validity_time) if mscc.validity_time is not None else 0.0
        deadline = self.loop.time() + validity if mscc.validity_time is not None else None
        return _Grant(ok, units, deadline, validity, mscc.final_unit)

    async def consume(self, plan: _Plan, grant: _Grant, fraction: float) -> int:
        """Use part of a grant (>= 50%, at most all of it) and return the units to report.

        Usage never runs past the grant's Validity-Time: when simulated time would cross it,
        the report goes out just before the deadline with what was used until then.
        """
        if not grant.ok:
            return 0
        units = min(grant.units, max(1, math.ceil(grant.units * fraction)))
        scale = self.config.time_scale
        if scale <= 0:
            if grant.deadline is not None and self.loop.time() >= grant.deadline:
                return 0  # the grant expired before it could be used
            return units
        seconds = units / DATA_OCTETS_PER_SECOND if plan.service == "data" else float(units)
        wait = seconds * scale
        if grant.deadline is not None:
            margin = min(1.0, 0.1 * grant.validity)
            room = max(0.0, grant.deadline - margin - self.loop.time())
            if wait > room:
                units = math.floor(units * room / wait) if wait > 0 else 0
                wait = room
        await asyncio.sleep(wait)
        return units

    async def session(self, plan: _Plan, conn: PeerConnection) -> bool:
        """Run one session; True when its dialogue ran to the end, False when it was cut off."""
        c = self.config
        sid = f"{self.sid_prefix};{plan.index}"
        rg = RATING_GROUPS[plan.service]

        ccrs = self.template.session(sid, plan.msisdn, plan.service, rg, plan.destination, c.mcc_mnc)

        def ccr(kind: RequestType, number: int, requested: int | None, used: int) -> Message:
            return ccrs.request(kind, number, requested, used, int(time.time()))

        if plan.service == "sms":
            return await self.ccr(conn, ccr(RequestType.EVENT, 0, 1, 0)) is not None
        result = await self.ccr(conn, ccr(RequestType.INITIAL, 0, None, 0))
        if result is None:
            return False
        if not result.ok:
            return True  # a failed CCR-I: the session never existed, nothing to terminate
        grant = self._grant(result, rg)
        number = 0
        for step in range(plan.updates + 1):
            last = step == plan.updates or grant.final or not grant.ok
            used = await self.consume(plan, grant, plan.fractions[step])
            number += 1
            if last:
                return await self.ccr(conn, ccr(RequestType.TERMINATION, number, 0, used)) is not None
            result = await self.ccr(conn, ccr(RequestType.UPDATE, number, None, used))
            if result is None:
                return False
            grant = self._grant(result, rg)
        raise AssertionError("unreachable: the last step terminates")

    async def _guarded(self, plan: _Plan, conn: PeerConnection) -> None:
        try:
            ended = await self.session(plan, conn)
        except asyncio.CancelledError:
            self.aborted += 1
            raise
        except Exception:
            log.exception("traffic session failed")
            self.errors += 1
            self.aborted += 1
            return
        if ended:
            self.completed += 1
        else:
            self.aborted += 1

    # --- schedule ---------------------------------------------------------------------------------

    async def ticker(self) -> None:
        c = self.config
        total = round(c.duration * c.rate)
        interval = 1.0 / c.rate
        bound = self.config.in_flight_bound()
        tasks = self.tasks
        launched = 0
        start = self.t0
        while launched < total:
            now = self.loop.time()
            due = min(total, int((now - start) * c.rate) + 1)
            if due > launched:  # the earliest session due now is the latest one
                late = now - (start + launched * interval)
                self.lateness.append(int(late * 1e9))
                if late > self.behind:
                    self.behind = late
            while launched < due:
                plan = self.plan(launched)  # drawn even when shed: the seed fixes every session
                launched += 1
                if len(tasks) >= bound:
                    self.shed += 1
                    continue
                conn = self._connection(plan.index)
                if conn is None:
                    log.error("no open Diameter connection left: stopping")
                    self.shed += total - launched + 1
                    return
                if self.abatement.throttles(conn.remote_host, now, self.abate_draws.random()):
                    self.abated += 1  # the loss algorithm: new sessions held back, never their updates
                    continue
                self.started += 1
                self.service_counts[plan.service] += 1
                task = self.loop.create_task(self._guarded(plan, conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if launched < total:
                next_at = start + launched * interval
                await asyncio.sleep(max(0.001, next_at - self.loop.time()))

    async def reporter(self) -> None:
        assert self.progress is not None
        last_t, last_answers = self.t0, 0
        while True:
            await asyncio.sleep(1.0)
            now = self.loop.time()
            rate = (self.answers - last_answers) / (now - last_t) if now > last_t else 0.0
            last_t, last_answers = now, self.answers
            self.progress(self.snapshot(now, rate))

    def snapshot(self, now: float, rate: float) -> Snapshot:
        return Snapshot(
            elapsed=now - self.t0,
            requests=self.requests,
            answers=self.answers,
            rate=rate,
            p99_ms=self.histogram.percentile_ms(99),
            in_flight=len(self.tasks),
            sessions_started=self.started,
            shed=self.shed,
            timeouts=self.timeouts,
            errors=self.errors,
        )

    async def run(self, ready: Callable[[], Awaitable[None]] | None = None) -> TrafficReport:
        await self.open()
        reporter: asyncio.Task[None] | None = None
        try:
            if ready is not None:  # connected: wait for the other processes of the run (`processes`)
                await ready()
            self.t0 = self.loop.time()
            if self.progress is not None:
                reporter = self.loop.create_task(self.reporter())
            await self.ticker()
            if self.tasks:
                _, late = await asyncio.wait(set(self.tasks), timeout=self.config.drain_seconds())
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.gather(*late, return_exceptions=True)
            elapsed = self.loop.time() - self.t0
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.close()
        if self.progress is not None:
            self.progress(self.snapshot(self.t0 + elapsed, self.answers / elapsed if elapsed else 0.0))
        return self.report(elapsed)

    def report(self, elapsed: float) -> TrafficReport:
        p50, p95, p99, top = latency_fields(sorted(self.latencies))
        late = sorted(self.lateness)
        return TrafficReport(
            requests=self.requests,
            answers=self.answers,
            sessions_started=self.started,
            sessions_completed=self.completed,
            sessions_aborted=self.aborted,
            sessions_shed=self.shed,
            duration=elapsed,
            ccr_per_s=self.answers / elapsed if elapsed > 0 else 0.0,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=top,
            result_counts=dict(self.result_counts),
            mscc_result_counts=dict(self.mscc_result_counts),
            timeouts=self.timeouts,
            errors=self.errors,
            target_rate=self.config.rate,
            connections=len(self.conns),
            behind_ms=self.behind * 1000,
            service_counts=dict(self.service_counts),
            behind_p99_ms=percentile_ms(late, 99),
            sessions_abated=self.abated,
        )


async def run_traffic(
    config: TrafficConfig,
    progress: Callable[[Snapshot], None] | None = None,
    *,
    ready: Callable[[], Awaitable[None]] | None = None,
    latencies: list[int] | None = None,
) -> TrafficReport:
    """Open `config.connections` Diameter connections (CER/CEA), run the sessions, disconnect
    (DPR/DPA) and report. `progress` gets a Snapshot about every second and once at the end.
    `ready` is awaited once connected, before the first session (the processes of one run start
    together); `latencies` gets every answer's latency in ns (to merge runs' percentiles).
    Raises OSError/ConnectionError/TimeoutError when the connections cannot be opened."""
    run = _Run(config, progress)
    report = await run.run(ready)
    if latencies is not None:
        latencies.extend(run.latencies)
    return report


def parse_mix(text: str) -> tuple[float, float, float]:
    """The weights of voice, data and SMS from "40:40:20" (-> (40.0, 40.0, 20.0))."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"mix {text!r}: three weights voice:data:sms, like 40:40:20")
    try:
        voice, data, sms = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"mix {text!r}: weights must be numbers") from None
    if min(voice, data, sms) < 0 or voice + data + sms <= 0:
        raise ValueError(f"mix {text!r}: non-negative weights, not all zero")
    return voice, data, sms


class ProgressPrinter:
    """The progress callback of the CLI: one line rewritten in place (`\\r`) on a terminal,
    a plain line a second otherwise (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = 0

    def __call__(self, snap: Snapshot) -> None:
        line = snap.line()
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = max(self.width, len(line))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


__all__ = [
    "BEHIND_LIMIT_MS",
    "ProgressPrinter",
    "Snapshot",
    "TrafficConfig",
    "TrafficReport",
    "latency_fields",
    "parse_mix",
    "percentile_ms",
    "run_traffic",
]
