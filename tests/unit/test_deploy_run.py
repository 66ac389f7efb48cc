"""deploy.run(): the one place a process starts its services, waits, and stops them in reverse."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from cellcelly.deploy.service import Group, Health, Lifecycle, Worker, run

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class Probe:
    """A Service recording what happened to it into a shared journal."""

    def __init__(self, name: str, journal: list[str], *, fail_start: bool = False) -> None:
        self.name, self.journal, self.fail_start = name, journal, fail_start
        self.ended = asyncio.Event()
        self.failure: BaseException | None = None
        self.running = False

    async def start(self) -> None:
        if self.fail_start:
            self.journal.append(f"{self.name} failed")
            raise OSError(f"{self.name}: port taken")
        self.running = True
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.running = False
        self.journal.append(f"stop {self.name}")

    async def wait(self) -> None:
        await self.ended.wait()
        if self.failure is not None:
            raise self.failure

    def health(self) -> Health:
        return Health(self.running, "" if self.running else "down")


async def test_a_service_failing_to_start_stops_those_started_in_reverse() -> None:
    journal: list[str] = []
    services = [
        Probe("a", journal),
        Probe("b", journal),
        Probe("c", journal, fail_start=True),
        Probe("d", journal),
    ]
    ready: list[bool] = []
    with pytest.raises(OSError, match="c: port taken"):
        await run(services, ready=lambda: ready.append(True))
    assert journal == ["start a", "start b", "c failed", "stop b", "stop a"]
    assert ready == []  # never told ready


async def test_sigterm_stops_every_service_in_reverse() -> None:
    journal: list[str] = []
    services = [Probe("a", journal), Probe("b", journal), Probe("c", journal)]
    loop = asyncio.get_running_loop()
    await run(services, ready=lambda: loop.call_soon(os.kill, os.getpid(), signal.SIGTERM))
    assert journal == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    # the handlers are gone again: the next SIGTERM is not swallowed by a finished run()
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)


async def test_sigint_stops_them_too() -> None:
    journal: list[str] = []
    loop = asyncio.get_running_loop()
    await run([Probe("a", journal)], ready=lambda: loop.call_soon(os.kill, os.getpid(), signal.SIGINT))
    assert journal == ["start a", "stop a"]


async def test_one_that_ends_stops_the_rest() -> None:
    journal: list[str] = []
    services = [Probe("a", journal), Probe("b", journal), Probe("c", journal)]
    loop = asyncio.get_running_loop()
    await run(services, ready=lambda: loop.call_soon(services[1].ended.set))
    assert journal == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_one_that_fails_stops_the_rest_and_its_error_is_raised() -> None:
    journal: list[str] = []
    services = [Probe("a", journal), Probe("b", journal)]
    services[0].failure = RuntimeError("lost the broker")
    loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match="lost the broker"):
        await run(services, ready=lambda: loop.call_soon(services[0].ended.set))
    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_a_failing_stop_does_not_keep_the_others_running(caplog: pytest.LogCaptureFixture) -> None:
    journal: list[str] = []
    bad = Probe("bad", journal)

    async def broken() -> None:
        raise RuntimeError("stuck")

    bad.stop = broken  # type: ignore[method-assign]
    services = [Probe("a", journal), bad, Probe("c", journal)]
    loop = asyncio.get_running_loop()
    await run(services, ready=lambda: loop.call_soon(os.kill, os.getpid(), signal.SIGTERM))
    assert journal == ["start a", "start bad", "start c", "stop c", "stop a"]
    assert "bad did not stop cleanly" in caplog.text


async def test_group_health_is_not_ok_before_start_and_names_what_is_down() -> None:
    journal: list[str] = []
    a, b = Probe("a", journal), Probe("b", journal)
    group = Group("g", [a, b])
    assert not group.health().ok
    await group.start()
    assert group.health() == Health(True, "")
    b.running = False
    assert group.health() == Health(False, "b: down")
    await group.stop()
    assert not group.health().ok


async def test_worker_and_lifecycle_health_follow_start_and_stop() -> None:
    stop = asyncio.Event()
    worker = Worker("w", stop.wait, stop.set)
    calls: list[str] = []

    async def up() -> None:
        calls.append("up")

    async def down() -> None:
        calls.append("down")

    life = Lifecycle("l", up, down)
    for service in (worker, life):
        assert not service.health().ok
        await service.start()
        assert service.health().ok
        await service.stop()
        assert not service.health().ok
    await life.stop()  # a second stop does nothing
    assert calls == ["up", "down"]
