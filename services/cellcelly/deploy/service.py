"""What every deployable is to the process that runs it: a `Service` started, stopped and asked
for its health, and the one `run()` that owns signals.

A deployable is a `Group` of smaller services (an HTTP server, a TCP server, background workers)
started in order and stopped in reverse, so one deployable and the embedded stack (many
deployables on one loop) are run the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn

from cellcelly.web import http_server

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


NOT_STARTED = Health(False, "not started")


@dataclass(frozen=True, slots=True)
class Alone:
    """A deployable as a process of its own (`cellcelly <service>`): the service, and the line the
    command prints once it serves (ports are known only then)."""

    service: Service
    describe: Callable[[], str]


class Service(Protocol):
    name: str

    async def start(self) -> None:
        """Returns once the service serves (its ports are bound); raises if it cannot."""

    async def stop(self) -> None:
        """Stops what start() started; safe to call after a failed or no start."""

    async def wait(self) -> None:
        """Returns when the service ends on its own (raises what ended it); many never do."""

    def health(self) -> Health: ...


class Group:
    """Services started in order and stopped in reverse; ends when any of them ends."""

    def __init__(self, name: str, services: Sequence[Service]) -> None:
        self.name = name
        self.services = list(services)
        self._started: list[Service] = []

    async def start(self) -> None:
        try:
            for service in self.services:
                await service.start()
                self._started.append(service)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                await service.stop()
            except Exception:  # the others must still stop
                log.exception("%s did not stop cleanly", service.name)

    async def wait(self) -> None:
        await _first_to_end(self._started)

    def health(self) -> Health:
        if not self._started:
            return NOT_STARTED
        bad = [f"{s.name}: {h.detail}" for s in self.services if not (h := s.health()).ok]
        return Health(not bad, "; ".join(bad))


async def _first_to_end(services: Sequence[Service]) -> None:
    """Until one of `services` ends; what ended it is raised (none at all: wait forever)."""
    if not services:
        await asyncio.Event().wait()
    waits = [asyncio.ensure_future(s.wait()) for s in services]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    next(iter(done)).result()


class Lifecycle:
    """A service from a start and a stop coroutine (a Diameter server, an SMPP client, ...)."""

    def __init__(
        self, name: str, start: Callable[[], Awaitable[Any]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        self.name = name
        self._start, self._stop = start, stop
        self._running = False
        self._ended = asyncio.Event()

    async def start(self) -> None:
        await self._start()
        self._running = True

    async def stop(self) -> None:
        if self._running:
            self._running = False
            await self._stop()

    async def wait(self) -> None:
        await self._ended.wait()  # only stop() ends it

    def health(self) -> Health:
        return Health(True) if self._running else NOT_STARTED


class _OnATask:
    """A service that runs as one task on the loop: it waits on it, and is healthy while it runs."""

    _task: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    def health(self) -> Health:
        if self._task is None:
            return NOT_STARTED
        return Health(False, "ended") if self._task.done() else Health(True)


class Worker(_OnATask):
    """A background loop (`run` until `stop` is called), then `close` (e.g. a bus consumer)."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        stop: Callable[[], None],
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._run, self._stop_fn, self._close = run, stop, close
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        task, self._task = self._task, None
        self._stop_fn()
        await asyncio.gather(task, return_exceptions=True)
        if self._close is not None:
            await self._close()


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: `run()` is the one place that handles them."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class HttpService(_OnATask):
    """An ASGI app under uvicorn on the running loop (never a loop of its own)."""

    def __init__(self, name: str, app: Any, host: str, port: int) -> None:
        self.name, self.app, self.host, self.requested_port = name, app, host, port
        self.port = 0  # the one bound, once started
        self._server: Any = None
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        server = _Uvicorn(http_server(self.app, self.host, self.requested_port, lifespan="on").config)
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it (e.g. the port is taken)
                raise OSError(f"{self.name}: HTTP server on {self.host}:{self.requested_port} did not start")
            await asyncio.sleep(0.01)
        self._server, self._task = server, task
        self.port = int(server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        await task


async def run(services: Sequence[Service], ready: Callable[[], None] | None = None) -> None:
    """The one place signals are handled: SIGTERM/SIGINT (Kubernetes, Ctrl-C) stop everything.

    Starts `services` in order (a failure stops those started, in reverse, and is raised), calls
    `ready` (e.g. a banner with the ports bound), then runs until a signal or until one service
    ends (what ended it is raised after every service has stopped, in reverse order)."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled.set)
    everything = Group("process", services)
    failure: BaseException | None = None
    try:
        await everything.start()
        if ready is not None:
            ready()
        ended = asyncio.ensure_future(everything.wait())
        told = asyncio.ensure_future(signalled.wait())
        await asyncio.wait([ended, told], return_when=asyncio.FIRST_COMPLETED)
        for task in (ended, told):
            task.cancel()
        await asyncio.gather(ended, told, return_exceptions=True)
        if not ended.cancelled():
            failure = ended.exception()
            log.info("a service ended: stopping the others", extra={"failed": failure is not None})
    finally:
        await everything.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if failure is not None:
        raise failure
