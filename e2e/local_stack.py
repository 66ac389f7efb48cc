"""The scenario's stack endpoint for the embedded stack: `cellcelly run` under a tiny supervisor.

The supervisor plays the part Kubernetes plays on kind: when the process dies without being asked
to stop, it starts it again on the same ports and the same data directory. "Kill a component"
is SIGKILL of the whole process (the embedded stack is one process); "healed" is the restarted
process ready again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from scenario import cellcelly_command, wait_ready

from cellcelly.deploy.child import free_port

log = logging.getLogger(__name__)


class LocalStack:
    """`cellcelly run` on free ports, data in `data_dir`, restarted whenever it dies unasked."""

    def __init__(self, data_dir: Path, log_path: Path, **extra_env: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.mw_port, self.ocs_port, self.dgw_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "CELLCELLY_DATA_DIR": str(data_dir),
            "CELLCELLY_MW_PORT": str(self.mw_port),
            "CELLCELLY_OCS_PORT": str(self.ocs_port),
            "CELLCELLY_OCS_WIRE_PORT": str(free_port()),
            "CELLCELLY_DGW_PORT": str(self.dgw_port),
            "CELLCELLY_IVR_PORT": "-1",
            "CELLCELLY_MW_ARGON2_TIME_COST": "1",
            "CELLCELLY_MW_ARGON2_MEMORY_KIB": "8192",
            **extra_env,
        }
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- StackEndpoint ---
    @property
    def mw_url(self) -> str:
        return f"http://127.0.0.1:{self.mw_port}"

    @property
    def ocs_url(self) -> str:
        return f"http://127.0.0.1:{self.ocs_port}"

    @property
    def diameter(self) -> tuple[str, int]:
        return "127.0.0.1", self.dgw_port

    def kill_and_heal(self, timeout: float = 90.0) -> str:
        with self._lock:
            assert self.process is not None
            victim, starts = self.process, self.starts
        os.killpg(victim.pid, signal.SIGKILL)  # no shutdown hook runs: what is not on disk is lost
        victim.wait(timeout=10)
        deadline = time.monotonic() + timeout
        while self.starts == starts:
            if time.monotonic() > deadline:
                raise AssertionError(f"the supervisor did not restart cellcelly run within {timeout}s")
            time.sleep(0.05)
        self.wait_ready(timeout)
        return f"SIGKILL of cellcelly run (pid {victim.pid}), restarted as pid {self.pid} by the supervisor"

    def delete(self) -> None:
        """Stop the stack (TERM, then KILL); the data directory stays, as a PVC with Retain would."""
        self.stop()
        if not (self.data_dir / "cellcelly.db").exists():
            raise AssertionError(f"the data directory lost its system of record: {self.data_dir}")

    # --- the supervisor ---
    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 90.0) -> LocalStack:
        self._log = self.log_path.open("ab")
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="cellcelly-supervisor", daemon=True)
        self._watcher.start()
        self.wait_ready(timeout)
        return self

    def _spawn(self) -> None:
        with self._lock:
            self.process = subprocess.Popen(
                [*cellcelly_command(), "run"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill takes all it started
            )
            self.starts += 1
        log.info("cellcelly run started (pid %s, start %s)", self.process.pid, self.starts)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.process
            if process is not None and process.poll() is not None and not self._stopping.is_set():
                log.warning("cellcelly run exited with %s: restarting it", process.returncode)
                time.sleep(0.2)  # as a kubelet's back-off would, if shorter
                if not self._stopping.is_set():
                    self._spawn()
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 90.0) -> None:
        try:
            wait_ready(f"{self.mw_url}/readyz", timeout)
            wait_ready(f"{self.ocs_url}/readyz", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- cellcelly run log ---\n{self.log_tail()}") from None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
