"""A deployable run as a child process of `cellcelly run` (`cellcelly <command>`), as a `Service`.

Why: one Python process has one core's worth of interpreter. The DGW and the OCS each take about
half of it at 10,000 CCR/s, and the SF's writes to the record compete with both: on one loop the
embedded stack spent 206-234 µs of CPU a CCR (the two processes ~86 together) and saturated near
8,000 CCR/s. So
`make run` runs the DGW and the SF as children (`CELLCELLY_RUN_SPLIT`, on by default; the notifier
too when it tells by e-mail, `EmbeddedStack._notifier_child`) and the rest,
which owns the embedded store's files, in the parent: the charging path is then the same two
processes the operator deploys, and self-care requests no longer wait behind CCRs.

A child is ready when it prints its line (`cellcelly <command>` prints where it serves once it
does); it dies with the parent (`CELLCELLY_PARENT_PID`, see `exit_with_parent`), and a child that
exits unasked ends the stack, as any other service ending does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cellcelly.deploy.service import NOT_STARTED, Health

log = logging.getLogger(__name__)

PARENT_PID = "CELLCELLY_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # prctl(2)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, for a child whose port the parent must name (banner, DGW)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def exit_with_parent() -> None:
    """In a child: SIGTERM when the parent `cellcelly run` dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no orphan keeps the ports and the data directory; elsewhere nothing."""
    expected = os.environ.get(PARENT_PID)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("could not ask to end with the parent (prctl errno %d)", ctypes.get_errno())
    if str(os.getppid()) != expected:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Child:
    """`python -m cellcelly.cli <command>` with the parent's environment plus `env()` (called at
    start, so it may name ports known only once earlier services serve)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: Callable[[], Mapping[str, str]],
        *,
        start_timeout: float = 60.0,
        nice: int = 0,
    ) -> None:
        self.name, self.command, self._env = name, command, env
        self.start_timeout = start_timeout
        self.nice = nice  # added to the parent's niceness: the scheduler's share of a busy CPU
        self.ready_line = ""  # what the child printed once it served
        self._proc: asyncio.subprocess.Process | None = None
        self._stdout: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        env = {**os.environ, **self._env(), PARENT_PID: str(os.getpid())}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cellcelly.cli", *self.command, env=env, stdout=asyncio.subprocess.PIPE
        )  # its logs go to our stderr as they are; its stdout is the ready line, then nothing
        self._proc = proc
        if self.nice:
            # set from outside (no preexec_fn: the parent has threads); its imports just began. One
            # already gone is told by its empty stdout below, as any child that cannot start
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            await self.stop()
            raise OSError(f"{self.name}: not serving after {self.start_timeout:g} s") from None
        if not line:
            code = await proc.wait()
            raise OSError(f"{self.name} (cellcelly {' '.join(self.command)}) exited with {code}")
        self.ready_line = line.decode(errors="replace").strip()  # and so it serves: healthy from now
        self._stdout = asyncio.ensure_future(self._relay(proc.stdout))

    async def _relay(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            log.info("%s: %s", self.name, line.decode(errors="replace").rstrip())

    async def stop(self) -> None:
        proc, self._stopping = self._proc, True
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            log.warning("%s did not stop within 20 s of SIGTERM: killed", self.name)
            proc.kill()
            await proc.wait()
        if self._stdout is not None:
            await asyncio.gather(self._stdout, return_exceptions=True)

    async def wait(self) -> None:
        if self._proc is None:
            await asyncio.Event().wait()
            return
        code = await self._proc.wait()
        # 0: it stopped cleanly (Ctrl-C reaches the whole process group, the children first at
        # times): the stack ends without an error; anything else unasked is one
        if code != 0 and not self._stopping:
            raise RuntimeError(f"{self.name} (cellcelly {' '.join(self.command)}) exited with {code}")

    def health(self) -> Health:
        if self._proc is None or not self.ready_line:
            return NOT_STARTED
        code = self._proc.returncode
        return Health(True) if code is None else Health(False, f"exited with {code}")


class ChildrenUp(Collector):
    """The children on the parent's /metrics (`cellcelly_run_child_up`) and in its /readyz: the
    stack is ready once each of them serves, as it is in one process once its last part does."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)

    def check_ready(self) -> None:
        states = [(c.name, c.health()) for c in self.children]
        down = [f"{name} ({health.detail})" for name, health in states if not health.ok]
        if down:
            raise RuntimeError(f"not serving: {', '.join(down)}")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "cellcelly_run_child_up", "1 while a child process of `cellcelly run` serves", labels=["child"]
        )
        for child in self.children:
            up.add_metric([child.name], 1.0 if child.health().ok else 0.0)
        yield up
