"""A call from baresip (a real softphone, Debian baresip) to the IVR; baresip decodes the G.711 itself
and its sndfile module records what it heard to a WAV file, which the test then measures."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import time
import wave
from array import array
from pathlib import Path

import pytest

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.deploy.backends import open_backends
from cellcelly.ivr.prompt import PromptAudio
from cellcelly.ivr.service import IvrService
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import Settings
from cellcelly_dev.devservers import free_port
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TEMPLATES = Path(__file__).parent.parent / "ivr" / "baresip"
SUBSCRIBER = SubscriberRecord("5321234567", "Ayşe", "Yılmaz", "ayse@example.com", "active", "DIYARBAKIR")


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool, package in (("baresip", "baresip"), ("espeak-ng", "espeak-ng"), ("sox", "sox")):
        require(shutil.which(tool) is not None, f"{tool} not installed: apt-get install {package}")


async def call_with_baresip(workdir: Path, ivr_port: int, caller: str) -> tuple[Path, str]:
    """Dial 5555 and wait until the IVR hangs up; returns baresip's recording and its output."""
    for attempt in range(3):  # baresip also binds the SIP port + 1 (TLS): a free port may be taken
        recording, text = await _call(workdir / f"try{attempt}", ivr_port, caller)
        if recording is not None or "Address already in use" not in text:
            break
    assert recording is not None, text
    return recording, text


async def _call(workdir: Path, ivr_port: int, caller: str) -> tuple[Path | None, str]:
    records = workdir / "rec"
    records.mkdir(parents=True)
    rtp = free_port()
    fields = {
        "sip_port": free_port(),
        "rtp_lo": rtp,
        "rtp_hi": rtp + 1,
        "snd_path": records,
        "caller": caller,
    }
    for name in ("config", "accounts"):
        (workdir / name).write_text((TEMPLATES / f"{name}.template").read_text().format(**fields))
    (workdir / "contacts").write_text("")
    proc = await asyncio.create_subprocess_exec(
        "baresip",
        "-f",
        str(workdir),
        "-e",
        f"/dial sip:5555@127.0.0.1:{ivr_port}",
        "-t",
        "80",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = []
    try:
        async with asyncio.timeout(75):
            while line := await proc.stdout.readline():
                output.append(line.decode(errors="replace"))
                if " terminated (duration" in output[-1]:
                    break
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    text = "".join(output)
    recordings = sorted(records.glob("dump-*-dec.wav"))
    return (recordings[-1] if recordings else None), text


async def test_baresip_hears_the_balance(data_dir: Path, tmp_path: Path) -> None:
    components = open_backends(Settings(data_dir=data_dir))
    components.accounts.open(dataclasses.replace(SUBSCRIBER, created_at=int(time.time())))
    lookup = StoreBalanceLookup(components.store)
    audio = PromptAudio(speed=190)
    service = IvrService("127.0.0.1", 0, lookup, audio=audio, trusted_peers="127.0.0.1")
    await service.start()
    try:
        recording, output = await call_with_baresip(
            tmp_path / "baresip", service.port, "90" + SUBSCRIBER.msisdn
        )
        assert "Call established" in output and "PCMU 8000Hz" in output, output
        summary = await lookup(SUBSCRIBER.msisdn)
        prompt_seconds = len(await audio.ulaw(summary)) / 8000
    finally:
        await service.stop()
        components.close()
    assert service.stats["answered"] == 1 and service.stats["byes_answered"] == 1
    with wave.open(str(recording)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        samples = array("h", w.readframes(w.getnframes()))
    seconds = len(samples) / 8000
    assert abs(seconds - prompt_seconds) < 1.0, (seconds, prompt_seconds)
    energy = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert energy > 500, energy
    frames = [
        math.sqrt(sum(s * s for s in samples[i : i + 160]) / 160) for i in range(0, len(samples) - 160, 160)
    ]
    loud = sum(f > energy / 2 for f in frames) / len(frames)
    assert 0.1 < loud < 0.9, loud  # speech: loud words and quiet pauses, neither constant nor silence
