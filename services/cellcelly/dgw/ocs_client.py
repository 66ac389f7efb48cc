"""How the DGW reaches the OCS: in process (embedded), or over the wire to several endpoints.

`WireOcs` keeps one connection per endpoint and spreads requests over the healthy ones. An
endpoint that fails or does not answer within the timeout is taken out of rotation for
`retry_after` seconds, and the request is sent to another endpoint, which is safe because the OCS
answers a repeated (session, request number) with its stored answer and charges once. A connection
that fails, or has been silent for the timeout, is closed and every request it held goes elsewhere;
one that still answers (an OCS under load, one answer late) keeps the others in flight on it.
When no endpoint can answer, `OcsUnavailable` lets the gateway answer 3002 so the network applies
its credit-control failure handling.

Each connection first shows the shared key (CELLCELLY_OCS_API_KEY, `ocs/wire.py`) and is used only
once the OCS has accepted it; an OCS that refuses the key is out of rotation like a dead one, and
says so in the log (a key that differs between DGW and OCS is a configuration error to see at once).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import orjson

from cellcelly.application.charging import ChargingService
from cellcelly.codec import answer_from_list
from cellcelly.domain.catalogue import ChargingPolicy
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, RequestType, ResultCode, ServiceResult
from cellcelly.errors import BackendError
from cellcelly.ocs.wire import FrameReader, auth_frame, frame, request_to_list
from cellcelly.timeouts import Deadlines
from cellcelly.turn_writer import TurnWriter

log = logging.getLogger(__name__)


class OcsUnavailable(BackendError):
    """No OCS endpoint answered."""


class OcsRefused(BackendError):
    """The OCS refused this gateway's key."""


# what `charge_soon` calls once the request is answered: the answer, or the exception `charge` raises
Answered = Callable[[ChargeAnswer | None, BaseException | None], None]


class OcsClient(Protocol):
    async def charge(self, req: ChargeRequest) -> ChargeAnswer: ...

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        """Send `req` now and call `done` with what `charge` would return or raise; False, doing
        nothing, when it cannot be sent at once (then `charge`). For the gateway's common case: no
        task, no coroutine a request."""
        ...

    async def close(self) -> None: ...


class LocalOcs:
    """The OCS in this process (the embedded stack)."""

    def __init__(self, charging: ChargingService) -> None:
        self.charging = charging

    async def charge(self, req: ChargeRequest) -> ChargeAnswer:
        return await self.charging.charge_async(req)  # inline on the embedded store

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        return False

    async def close(self) -> None:
        return None


class NoopOcs:
    """Grants what is asked (or the default quota) and charges nothing: `make bench`'s baseline
    for the gateway alone."""

    def __init__(self, policy: ChargingPolicy | None = None) -> None:
        self.policy = policy or ChargingPolicy()

    async def charge(self, req: ChargeRequest) -> ChargeAnswer:
        results = []
        for u in req.services:
            if req.request_type is RequestType.TERMINATE or u.requested == 0:
                results.append(ServiceResult(u.rating_group, ResultCode.SUCCESS))
                continue
            granted = u.requested if u.requested is not None else self.policy.quotas[u.service].default
            validity = None if req.request_type is RequestType.EVENT else self.policy.validity_time
            results.append(ServiceResult(u.rating_group, ResultCode.SUCCESS, granted, validity))
        return ChargeAnswer(
            req.session_id, req.request_type, req.request_number, ResultCode.SUCCESS, tuple(results)
        )

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        return False  # the baseline stays the gateway as it was: a task a request

    async def close(self) -> None:
        return None


class _Connection(asyncio.Protocol):
    def __init__(self, endpoint: _Endpoint) -> None:
        self.endpoint = endpoint
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.answered_at = time.monotonic()  # when a frame last came: a connection that answers lives
        # requests made in one loop turn leave in one send: a send each cost the gateway and the
        # OCS more than framing them (`make bench`, the OCS on VoltDB at 32 in flight)
        self.loop = asyncio.get_running_loop()  # asked once: a getpid system call on Python 3.11
        self.writer = TurnWriter(self.loop)
        # the OCS's answer to the key: set when it accepts, failed when it refuses or closes
        self.accepted: asyncio.Future[None] = self.loop.create_future()
        self.accepted.add_done_callback(lambda f: f.cancelled() or f.exception())  # always retrieved

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = self.writer.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.answered_at = time.monotonic()
        try:
            frames = self.reader.feed(data)
        except ValueError:
            assert self.transport is not None
            self.transport.abort()
            return
        for raw in frames:
            message = orjson.loads(raw)
            if isinstance(message, dict):  # the OCS's answer to the key
                if not self.accepted.done():
                    if message.get("ok") is True:
                        self.accepted.set_result(None)
                    else:
                        self.accepted.set_exception(OcsRefused(str(message.get("detail", "key refused"))))
                continue
            fut = self.pending.pop(message[0], None)
            if fut is not None and not fut.done():
                fut.set_result(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.accepted.done():
            self.accepted.set_exception(ConnectionError("OCS closed the connection before accepting the key"))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("OCS connection lost"))
        self.pending.clear()
        self.endpoint.lost(self)


def endpoint_name(host: str, port: int) -> str:
    """How logs and banners name an endpoint: host:port, or a Unix socket's path."""
    return host if host.startswith("/") else f"{host}:{port}"


class _Endpoint:
    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self._api_key = api_key
        self.conn: _Connection | None = None
        self.down_until = 0.0
        self._connecting: asyncio.Future[_Connection] | None = None
        # one log line when it goes out and one when it is back, not one per request failed over: a
        # killed OCS with 300 requests in flight wrote 300 identical warnings
        self.out = False
        self.failed_over = 0  # requests that failed on it since it went out

    @property
    def name(self) -> str:
        return endpoint_name(self.host, self.port)

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def answered_at(self) -> float:
        """When the current connection last received a frame (-inf without one)."""
        return self.conn.answered_at if self.conn is not None else float("-inf")

    def lost(self, conn: _Connection) -> None:
        if self.conn is conn:
            self.conn = None

    async def connection(self, timeout: float) -> _Connection:
        if self.conn is not None and self.conn.transport is not None and not self.conn.transport.is_closing():
            return self.conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect(timeout))
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.host.startswith("/"):  # a Unix socket (`Settings.ocs_endpoints`)
            opening = loop.create_unix_connection(lambda: _Connection(self), self.host)
        else:
            opening = loop.create_connection(lambda: _Connection(self), self.host, self.port)
        _, conn = await asyncio.wait_for(opening, timeout)
        assert conn.transport is not None
        conn.transport.write(auth_frame(self._api_key))
        try:
            await asyncio.wait_for(asyncio.shield(conn.accepted), timeout)
        except BaseException as exc:
            conn.transport.close()
            if isinstance(exc, OcsRefused):
                log.error("OCS refused this gateway's key", extra={"endpoint": self.name, "reason": str(exc)})
            raise
        self.conn = conn
        log.info("connected to OCS", extra={"endpoint": self.name})
        return conn

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()

    def failed(self, exc: Exception) -> None:
        """A request failed on it. The first failure takes it out and reports it on the next loop turn,
        once the other requests that failed with it (a lost connection fails all of them at once) are
        counted."""
        self.failed_over += 1
        if not self.out:
            self.out = True
            asyncio.get_running_loop().call_soon(self._report_out, exc)

    def _report_out(self, exc: Exception) -> None:
        log.warning(
            "OCS endpoint out of rotation",
            extra={"endpoint": self.name, "reason": repr(exc), "failed_over": self.failed_over},
        )

    def answered(self) -> None:
        self.down_until = 0.0
        if self.out:
            log.info(
                "OCS endpoint back in rotation",
                extra={"endpoint": self.name, "failed_over": self.failed_over},
            )
            self.out, self.failed_over = False, 0


class WireOcs:
    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        *,
        api_key: str,
        timeout: float = 2.0,
        retry_after: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one OCS endpoint is needed")
        if not api_key:
            raise ValueError("the OCS API key is needed (CELLCELLY_OCS_API_KEY)")
        self.endpoints = [_Endpoint(h, p, api_key) for h, p in endpoints]
        self.timeout = timeout
        self.retry_after = retry_after
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self._deadlines = Deadlines()
        self.failovers = 0

    def _order(self) -> list[_Endpoint]:
        """Healthy endpoints first, round robin among them; the others last, as a last resort.
        (Every CCR asks: one endpoint, or all of them healthy, costs no list sorted out.)"""
        endpoints = self.endpoints
        n = len(endpoints)
        if n == 1:
            return endpoints
        start = next(self._rr) % n
        rotated = endpoints[start:] + endpoints[:start]
        now = time.monotonic()
        healthy = [e for e in rotated if e.healthy(now)]
        if len(healthy) == n:
            return rotated
        return healthy + [e for e in rotated if not e.healthy(now)]

    async def charge(
        self,
        req: ChargeRequest,
        *,
        order: list[_Endpoint] | None = None,
        tried: _Endpoint | None = None,
        last: Exception | None = None,
    ) -> ChargeAnswer:
        """Charge on the healthy endpoints in turn (`order`: the turn `charge_soon` took already);
        `tried`: the one that failed already (failing over from `charge_soon`), with its exception
        `last`."""
        payload = request_to_list(req)
        for endpoint in self._order() if order is None else order:
            if endpoint is tried:
                continue
            if last is not None:
                self.failovers += 1
            try:
                conn = await endpoint.connection(self.timeout)
                rid, fut = self._send(conn, payload)
                try:
                    message = await fut
                finally:
                    conn.pending.pop(rid, None)
            except (OSError, OcsRefused, TimeoutError) as exc:  # ConnectionError is an OSError
                last = self._failed(endpoint, exc)
                continue
            return self._answer(endpoint, message)
        raise OcsUnavailable(f"no OCS endpoint answered: {last!r}")

    def charge_soon(self, req: ChargeRequest, done: Answered) -> bool:
        order = self._order()
        endpoint = order[0]
        conn = endpoint.conn
        if (
            conn is None
            or conn.transport is None
            or conn.transport.is_closing()
            or not endpoint.healthy(time.monotonic())
        ):  # connecting first, or no endpoint healthy: `charge`, on the same turn of the rotation
            task = asyncio.get_running_loop().create_task(self.charge(req, order=order))
            task.add_done_callback(functools.partial(_relay, done))
            return True
        rid, fut = self._send(conn, request_to_list(req))
        fut.add_done_callback(functools.partial(self._landed, req, endpoint, conn, rid, done))
        return True

    def _send(self, conn: _Connection, payload: list[Any]) -> tuple[int, asyncio.Future[Any]]:
        rid = next(self._ids)
        fut: asyncio.Future[Any] = conn.loop.create_future()
        conn.pending[rid] = fut
        conn.writer.write(frame([rid, payload]))
        self._deadlines.add(fut, self.timeout, "no answer from the OCS in time")
        return rid, fut

    def _landed(
        self,
        req: ChargeRequest,
        endpoint: _Endpoint,
        conn: _Connection,
        rid: int,
        done: Answered,
        fut: asyncio.Future[Any],
    ) -> None:
        """`charge_soon`'s request answered, or failed: then on to the other endpoints, as `charge`."""
        conn.pending.pop(rid, None)
        if fut.cancelled():
            done(None, asyncio.CancelledError())
            return
        exc = fut.exception()
        if exc is None:
            try:
                answer = self._answer(endpoint, fut.result())
            except Exception as failed:  # noqa: BLE001 - OcsUnavailable, or an answer that cannot be read
                done(None, failed)
                return
            done(answer, None)
        elif isinstance(exc, (OSError, OcsRefused, TimeoutError)):
            last = self._failed(endpoint, exc)
            task = asyncio.get_running_loop().create_task(self.charge(req, tried=endpoint, last=last))
            task.add_done_callback(functools.partial(_relay, done))
        else:
            done(None, exc)

    def _failed(self, endpoint: _Endpoint, exc: Exception) -> Exception:
        """Take `endpoint` out of rotation for a request that failed on it; the exception to report."""
        # its traceback holds the frame that caught it, which holds it and the future holding it: a
        # cycle, which only a full collection frees (runtime.tune_gc: what lives long is frozen)
        last = exc.with_traceback(None)
        now = time.monotonic()
        endpoint.down_until = now + self.retry_after
        # one slow answer on a connection that still answers (an OCS under load) must not fail
        # every other request in flight on it: it is closed only when it has been silent
        if not isinstance(exc, TimeoutError) or now - endpoint.answered_at() >= self.timeout:
            endpoint.close()
        endpoint.failed(exc)
        return last

    @staticmethod
    def _answer(endpoint: _Endpoint, message: list[Any]) -> ChargeAnswer:
        if message[1] is None:
            raise OcsUnavailable(f"OCS {endpoint.name} failed: {message[2]}")
        endpoint.answered()
        return answer_from_list(message[1])

    async def close(self) -> None:
        self._deadlines.close()
        for endpoint in self.endpoints:
            endpoint.close()


def _relay(done: Answered, task: asyncio.Task[ChargeAnswer]) -> None:
    if task.cancelled():
        done(None, asyncio.CancelledError())
        return
    exc = task.exception()
    if exc is not None:
        done(None, exc)
    else:
        done(task.result(), None)
