"""`cellcelly sms` and `cellcelly ivr` as processes of their own (how the operator runs them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_sms_gateway import reply

from cellcelly.ivr.prompt import tools_missing
from cellcelly_dev.devservers import free_port
from cellcelly_testing import require
from smsc import SmscProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@contextmanager
def cellcelly(command: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "cellcelly.cli", command], env={**os.environ, **env})
    try:
        yield proc
    finally:
        proc.terminate()
        assert proc.wait(20) == 0  # a clean stop on SIGTERM, as Kubernetes sends it


def seeded(data: Path) -> dict[str, str]:
    env = {"CELLCELLY_DATA_DIR": str(data), "CELLCELLY_LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-m", "cellcelly.cli", "seed"], env={**os.environ, **env}, check=True)
    return env


async def test_cellcelly_sms_answers_kalan(tmp_path: Path):
    smsc = SmscProcess(free_port(), "cellcelly", "Sm5c!pw")
    smsc.start()
    try:
        env = seeded(tmp_path / "data") | {
            "CELLCELLY_SMSC_HOST": "127.0.0.1",
            "CELLCELLY_SMSC_PORT": str(smsc.port),
            "CELLCELLY_SMSC_PASSWORD": "Sm5c!pw",
        }
        with cellcelly("sms", env):
            await smsc.wait_for(lambda e: e["event"] == "bind", timeout=30)
            mark = smsc.mark
            await smsc.command(cmd="deliver", source_addr="905321234567", text="KALAN", data_coding=0)
            said, _ = await reply(smsc, "905321234567", mark)
    finally:
        smsc.stop()
    assert said.startswith("CellCelly kalan haklarınız:\nBakiye: 100,00 TL\nDakika: 3000 dakika\n")


def test_cellcelly_ivr_answers_sip(tmp_path: Path):
    missing = " and ".join(tools_missing())
    require(not missing, f"{missing} not installed: apt-get install espeak-ng sox")
    port = free_port()
    env = seeded(tmp_path / "data") | {"CELLCELLY_IVR_PORT": str(port)}
    with cellcelly("ivr", env), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        mine = sock.getsockname()[1]  # the answer goes where the Via says
        options = (
            f"OPTIONS sip:5555@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{mine};branch=z9hG4bK-standalone\r\n"
            "From: <sip:5321234567@127.0.0.1>;tag=1\r\nTo: <sip:5555@127.0.0.1>\r\n"
            "Call-ID: standalone-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        deadline = time.monotonic() + 30
        answer = b""
        while not answer.startswith(b"SIP/2.0") and time.monotonic() < deadline:
            sock.sendto(options, ("127.0.0.1", port))
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                continue
    assert answer.startswith(b"SIP/2.0 200"), answer[:200]
