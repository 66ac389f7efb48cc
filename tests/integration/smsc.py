"""The SMSC simulator (tests/smsc/smsc.js, npm `smpp` 0.5) as a real process for the SMS tests.

`SmscProcess(port, system_id, password)` runs `node smsc.js` on 127.0.0.1, reads its JSON-line
events in a thread and sends it JSON-line commands on stdin. `npm ci` is run first when
tests/smsc/node_modules is missing. Node and npm are required (skipped on a laptop without
them, failed under CI=true).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellcelly_testing import require

log = logging.getLogger(__name__)

SMSC_DIR = Path(__file__).resolve().parents[1] / "smsc"
Event = dict[str, Any]


def ensure_simulator() -> None:
    require(
        shutil.which("node") is not None and shutil.which("npm") is not None,
        "node/npm not installed: apt-get install nodejs npm",
    )
    if not (SMSC_DIR / "node_modules" / "smpp" / "package.json").exists():
        log.info("installing the SMSC simulator's npm packages")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=SMSC_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )


class SmscProcess:
    def __init__(self, port: int, system_id: str, password: str, host: str = "127.0.0.1") -> None:
        self.port, self.system_id, self.password, self.host = port, system_id, password, host
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ids = 0

    def start(self, timeout: float = 15.0) -> None:
        ensure_simulator()
        self._proc = subprocess.Popen(
            [
                "node",
                str(SMSC_DIR / "smsc.js"),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--system-id",
                self.system_id,
                "--password",
                self.password,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        started = len(self.events)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["event"] == "listening" for e in self.events[started:]):
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"SMSC simulator exited with {self._proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("SMSC simulator did not start listening")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "output", "line": line.rstrip()}
            with self._lock:
                self.events.append(event)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()  # the simulator exits when its stdin ends
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)  # it has read everything the simulator said
        assert proc.stdout is not None
        proc.stdout.close()

    def send(self, **command: Any) -> int:
        assert self._proc is not None and self._proc.stdin is not None
        self._ids += 1
        command.setdefault("id", self._ids)
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        return int(command["id"])

    async def command(self, **command: Any) -> None:
        ident = self.send(**command)
        done = await self.wait_for(lambda e: e["event"] in ("ack", "nak") and e.get("id") == ident)
        if done["event"] == "nak":
            raise RuntimeError(f"SMSC simulator refused {command}: {done['error']}")

    def matching(self, predicate: Callable[[Event], bool], since: int = 0) -> list[Event]:
        with self._lock:
            return [e for e in self.events[since:] if predicate(e)]

    def of(self, kind: str, since: int = 0) -> list[Event]:
        return self.matching(lambda e: e["event"] == kind, since)

    @property
    def mark(self) -> int:
        """An index into the events: what happens after it."""
        with self._lock:
            return len(self.events)

    async def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 10.0, since: int = 0
    ) -> Event:
        return (await self.wait_count(predicate, 1, timeout, since))[0]

    async def wait_count(
        self, predicate: Callable[[Event], bool], count: int, timeout: float = 10.0, since: int = 0
    ) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate, since)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} events after {timeout} s; last: {self.events[-5:]}"
                )
            await asyncio.sleep(0.01)
