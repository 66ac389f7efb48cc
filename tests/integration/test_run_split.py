"""`cellcelly run` as it starts by default: the DGW and the SF as child processes of the stack
(`deploy/child.py`), on the embedded store, the file bus and SQLite (issue 16: the embedded stack
no slower than the two processes the operator deploys).

Real processes on 127.0.0.1, a real Diameter client, nothing faked: CCRs through the DGW child
over the OCS's wire, usage into the record by the SF child (its own /metrics), an ASR from the DGW
child after a suspension made in the parent, the children gone with a SIGKILLed parent, and a
child that dies ending the stack rather than leaving it half up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gy_client import CLIENT, answering, cut_off, voice_ccr
from stack_apart import until

from cellcelly.deploy.child import Child
from cellcelly.deploy.embedded import DEMO, SF_NICE, SF_SQLITE_CACHE_MIB, WIRE_SOCKET, EmbeddedStack
from cellcelly.diameter.codec import Message
from cellcelly.diameter.constants import Cmd
from cellcelly.diameter.peer import connect
from cellcelly.runtime import sched_slice_ns, slices_supported
from cellcelly.settings import Settings
from cellcelly.traffic.generator import TrafficConfig
from cellcelly_dev.devservers import free_port
from cellcelly_dev.procs import cellcelly_children

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADMIN = "run-split-admin-token-0123456789"


@dataclass
class Run:
    proc: subprocess.Popen[str]
    data: Path
    dgw_port: int
    ocs_port: int
    banner: str

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit code."""
        self.proc.terminate()
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def children(self) -> dict[str, int]:
        """{command: pid} of this run's children, from /proc (their command lines)."""
        return cellcelly_children(self.proc.pid)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_run(tmp_path: Path, **extra: str) -> Run:
    dgw_port, ocs_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CELLCELLY_")},
        "CELLCELLY_DATA_DIR": str(tmp_path / "data"),
        "CELLCELLY_OCS_PORT": str(ocs_port),
        "CELLCELLY_OCS_WIRE_PORT": "0",
        "CELLCELLY_DGW_PORT": str(dgw_port),
        "CELLCELLY_MW_PORT": "0",
        "CELLCELLY_IVR_PORT": "-1",
        "CELLCELLY_ADMIN_TOKEN": ADMIN,
        "CELLCELLY_DGW_ALLOWED_PEERS": f"@{CLIENT.origin_realm},traffic.cellcelly.local",
        "CELLCELLY_TRAFFIC_SUBSCRIBERS": "50",
        **extra,
    }
    with (tmp_path / "run.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cellcelly.cli", "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while not lines or lines[-1] != "Stop with Ctrl-C.":
            line = proc.stdout.readline()
            assert line, (
                f"cellcelly run exited with {proc.wait()}:\n{(tmp_path / 'run.log').read_text()[-3000:]}"
            )
            lines.append(line.rstrip("\n"))
            assert time.monotonic() < deadline, lines
    except BaseException:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise
    return Run(proc, tmp_path / "data", dgw_port, ocs_port, "\n".join(lines))


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = start_run(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def traffic(dgw_port: int, sessions_per_s: int, seconds: float) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "cellcelly.cli", "traffic", "--port", str(dgw_port), "--rate",
         str(sessions_per_s), "--duration", str(seconds), "--subscribers", "50", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    return report


def usage_rows(data: Path) -> int:
    with sqlite3.connect(data / "cellcelly.db", timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM usage_records").fetchone()[0])


def mailbox(data: Path) -> str:
    """The mail catcher's file: what would have been e-mailed."""
    path = data / "mailbox.jsonl"
    return path.read_text() if path.exists() else ""


def mw_url(run: Run) -> str:
    line = next(line for line in run.banner.splitlines() if "self-care web/PWA" in line)
    return line.split("self-care web/PWA ", 1)[1].split("/ ", 1)[0]


async def heavy_call(run: Run) -> str:
    """A call of 160,000 s by the first load subscriber (180,000 s in its package: past 80%); who."""
    msisdn = str(TrafficConfig().first_msisdn)
    peer = await connect("127.0.0.1", run.dgw_port, CLIENT, answering([]))
    try:
        started = await peer.request(voice_ccr("split;heavy;1", 1, 0, msisdn))
        assert started.result_code == 2001, started
        ended = await peer.request(voice_ccr("split;heavy;1", 3, 1, msisdn, used=160_000))
        assert ended.result_code == 2001, ended
    finally:
        await peer.disconnect()
    return msisdn


async def test_the_dgw_and_the_sf_are_children_that_charge_record_and_abort(run: Run) -> None:
    children = run.children()
    assert sorted(children) == ["dgw", "notifier", "sf"], children
    assert "processes         DGW, SF and notifier apart" in run.banner
    # the SF's and the notifier's deferred work yields the cores to charging; the DGW charges at
    # the parent's priority
    niceness = {name: os.getpriority(os.PRIO_PROCESS, pid) for name, pid in children.items()}
    parent = os.getpriority(os.PRIO_PROCESS, run.proc.pid)
    later = min(parent + SF_NICE, 19)
    assert niceness == {"dgw": parent, "sf": later, "notifier": later}, niceness
    # charging asks for short scheduler slices (Settings.sched_slice_us); the others, the kernel's default
    if slices_supported():
        slices = {name: sched_slice_ns(pid) for name, pid in {**children, "run": run.proc.pid}.items()}
        assert slices["run"] == slices["dgw"] == 200_000, slices
        assert slices["sf"] != 200_000 and slices["notifier"] != 200_000, slices

    # the DGW child charges over the OCS wire's Unix socket in the data directory, only this user's
    socket = run.data.absolute() / WIRE_SOCKET
    environ = Path(f"/proc/{children['dgw']}/environ").read_bytes().split(b"\0")
    assert f"CELLCELLY_DGW_OCS_ENDPOINTS={socket}".encode() in environ
    assert socket.is_socket() and socket.stat().st_mode & 0o777 == 0o600
    assert f"and {socket} (the DGW child's)" in run.banner
    # the SF child's SQLite page cache holds the usage history index's leaves its writes read
    sf_environ = Path(f"/proc/{children['sf']}/environ").read_bytes().split(b"\0")
    assert f"CELLCELLY_SQLITE_CACHE_MIB={SF_SQLITE_CACHE_MIB}".encode() in sf_environ
    parent_environ = Path(f"/proc/{run.proc.pid}/environ").read_bytes().split(b"\0")
    for others in (parent_environ, environ):  # the parent and the DGW child keep SQLite's own
        assert not any(e.startswith(b"CELLCELLY_SQLITE_CACHE_MIB=") for e in others)

    # the parent's /readyz and /metrics speak for its children
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{run.ocs_port}/readyz")).status_code == 200
        text = (await client.get(f"http://127.0.0.1:{run.ocs_port}/metrics")).text
    for child in ("dgw", "sf", "notifier"):
        assert f'cellcelly_run_child_up{{child="{child}"}} 1.0' in text, text
    # and how late its loop runs (`loop_lag.py`), sampled since it started
    lag_count = next(
        line for line in text.splitlines() if line.startswith("cellcelly_event_loop_lag_seconds_count")
    )
    assert float(lag_count.rsplit(" ", 1)[1]) > 0, lag_count

    # CCRs through the DGW child, charged over the OCS's wire in the parent
    report = traffic(run.dgw_port, 100, 2.0)
    assert report["timeouts"] == 0 and report["errors"] == 0, report
    assert report["result_counts"] == {"2001": report["answers"]}, report
    assert int(str(report["answers"])) >= 400, report

    # the DGW child counts them on its own /metrics (its port in the banner)
    shown = next(line for line in run.banner.splitlines() if "DGW metrics" in line)
    async with httpx.AsyncClient() as client:
        text = (await client.get(shown.split("DGW metrics ", 1)[1].split(",", 1)[0])).text
    assert f"cellcelly_dgw_ccr_total {float(report['answers'])}" in text, text
    assert f'cellcelly_dgw_answers_total{{result_code="2001"}} {float(report["answers"])}' in text, text
    assert "cellcelly_dgw_overloaded 0.0" in text and "process_cpu_seconds_total" in text, text

    # the SF child writes that usage into the record and says so on its own /metrics
    metrics = next(line for line in run.banner.splitlines() if "SF metrics" in line)
    url = metrics.split("SF metrics ", 1)[1].split(")", 1)[0]
    await until(lambda: usage_rows(run.data) > 0, 20, "no usage in the record from the SF child")
    async with httpx.AsyncClient() as client:
        written = 0.0
        deadline = time.monotonic() + 20
        while written == 0.0:
            assert time.monotonic() < deadline, "the SF child's /metrics never counted a write"
            text = (await client.get(url)).text
            written = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('cellcelly_sf_written_total{kind="usage"}')
            )
            await asyncio.sleep(0.3)

        # a call that uses 89% of a subscriber's minutes: the notifier child tells them, in the
        # mail catcher's file (the MW in the parent lists it)
        mailed = await heavy_call(run)
        await until(lambda: mailed in mailbox(run.data), 20, "no notice from the notifier child")
        listed = (await client.get(f"{mw_url(run)}/dev/mailbox.json")).json()["items"]
        assert mailed in [item["msisdn"] for item in listed], listed

        # a suspension made in the parent (the OCS's admin API) aborts the session the DGW child
        # holds: the change travels the file bus to the child's follower
        received: list[Message] = []
        peer = await connect("127.0.0.1", run.dgw_port, CLIENT, answering(received))
        try:
            answer = await peer.request(voice_ccr("split;live;1", 1, 0, DEMO.msisdn))
            assert answer.result_code == 2001 and not cut_off(answer), answer
            r = await client.put(
                f"http://127.0.0.1:{run.ocs_port}/admin/subscribers/{DEMO.msisdn}/status",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={"status": "suspended", "reference": "split"},
            )
            assert r.status_code == 200, r.text
            await until(
                lambda: any(m.code == Cmd.ABORT_SESSION for m in received), 20, "no ASR from the DGW child"
            )
            assert [str(m.session_id) for m in received] == ["split;live;1"]
        finally:
            await peer.disconnect()

    # a parent killed outright takes its children with it (nothing keeps the ports or the data)
    run.proc.kill()
    run.proc.wait(10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children.values()):
        assert time.monotonic() < deadline, f"children outlived a SIGKILLed parent: {children}"
        await asyncio.sleep(0.1)


def test_a_child_that_dies_ends_the_stack(run: Run) -> None:
    children = run.children()
    os.kill(children["dgw"], signal.SIGKILL)
    code = run.proc.wait(40)  # the parent stops everything it started, then says what ended it
    assert code != 0
    assert not alive(children["sf"])
    assert "dgw (cellcelly dgw) exited with -9" in Path(run.data.parent / "run.log").read_text()


def test_one_process_when_split_is_off(tmp_path: Path) -> None:
    started = start_run(tmp_path, CELLCELLY_RUN_SPLIT="false")
    try:
        assert started.children() == {}
        assert "processes         one" in started.banner
        report = traffic(started.dgw_port, 50, 1.0)
        assert report["timeouts"] == 0 and report["result_counts"] == {"2001": report["answers"]}, report
    finally:
        assert started.stop() == 0


def test_a_child_that_stops_cleanly_stops_the_stack_cleanly(run: Run) -> None:
    """Ctrl-C reaches the whole process group, and a child may stop before the parent hears it:
    a child's clean exit ends the stack without an error."""
    children = run.children()
    os.kill(children["sf"], signal.SIGTERM)
    assert run.proc.wait(40) == 0
    assert not alive(children["dgw"])
    assert not (run.data / WIRE_SOCKET).exists()  # the OCS took its socket away


def test_a_data_directory_too_deep_for_a_socket_keeps_the_wire_on_tcp(tmp_path: Path) -> None:
    split = EmbeddedStack(None, split=True)  # type: ignore[arg-type]  # only its settings are asked
    short = Settings(data_dir=tmp_path / "data")
    assert split._ocs_settings(short).ocs_wire_socket == str((tmp_path / "data" / WIRE_SOCKET).absolute())
    deep = Settings(data_dir=tmp_path / ("d" * 120))
    assert split._ocs_settings(deep).ocs_wire_socket == ""
    chosen = Settings(data_dir=tmp_path, ocs_wire_socket="/run/cellcelly/wire.sock")
    assert split._ocs_settings(chosen).ocs_wire_socket == "/run/cellcelly/wire.sock"
    assert EmbeddedStack(None)._ocs_settings(short).ocs_wire_socket == ""  # type: ignore[arg-type]


async def test_a_niced_child_that_cannot_start_says_how_it_exited(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child gone before its niceness is set (reaped at once) is told as any child that cannot
    start: by its exit code, not by the setpriority error."""

    def gone(*args: int) -> None:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(os, "setpriority", gone)
    child = Child("sf", ["--no-such-option"], dict, nice=SF_NICE)
    with pytest.raises(OSError, match=r"sf \(cellcelly --no-such-option\) exited with 2"):
        await child.start()
