"""Prompt audio made by the real espeak-ng and sox: a valid 8 kHz mono WAV that is speech, not
silence; the µ-law decoder agrees with sox's; the cache keys on the words only."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import shutil
import subprocess
import wave
from array import array

import pytest

from cellcelly.domain.balance_summary import Allowance, BalanceSummary
from cellcelly.domain.units import Service
from cellcelly.ivr.g711 import ulaw_to_pcm16
from cellcelly.ivr.prompt import PromptAudio, SynthesisError, prompt_sentences, prompt_wav
from cellcelly_testing import require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        require(shutil.which(tool) is not None, f"{tool} not installed: apt-get install {package}")


def balance(wallet: int, voice_minutes: int) -> BalanceSummary:
    return BalanceSummary(
        "5321234567",
        "active",
        wallet,
        (
            Allowance(Service.VOICE, voice_minutes * 60, 7000 * 60, 1_900_000_000),
            Allowance(Service.SMS, 7000, 7000, 1_900_000_000),
            Allowance(Service.DATA, 7 * 1024**3, 7 * 1024**3, 1_900_000_000),
        ),
        ("DIYARBAKIR",),
    )


def rms(samples: array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


async def test_wav_is_valid_speech_at_8khz() -> None:
    data = await prompt_wav(balance(1250, 340))
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        seconds = w.getnframes() / 8000
        samples = array("h", w.readframes(w.getnframes()))
    assert 5 < seconds < 40, seconds
    assert rms(samples) > 500
    assert len(set(samples)) > 100  # speech, not a constant or a square wave
    # speech has pauses: some 20 ms frames are far quieter than the loudest
    frames = [rms(samples[i : i + 160]) for i in range(0, len(samples) - 160, 160)]
    assert min(frames) < max(frames) / 20


async def test_ulaw_decoder_agrees_with_sox() -> None:
    audio = PromptAudio()
    ulaw = await audio.ulaw(None)
    ours = ulaw_to_pcm16(ulaw)
    theirs = subprocess.run(
        ["sox", "-t", "ul", "-r", "8000", "-c", "1", "-", "-t", "raw", "-e", "signed", "-b", "16", "-L", "-"],
        input=ulaw,
        capture_output=True,
        check=True,
    ).stdout
    assert ours == theirs


async def test_cache_keys_on_words_never_on_the_caller() -> None:
    audio = PromptAudio()
    first = await audio.ulaw(balance(1250, 340))
    ran = audio.syntheses
    assert ran == len(prompt_sentences(balance(1250, 340)))
    assert await audio.ulaw(balance(1250, 340)) == first and audio.syntheses == ran
    # another subscriber with other figures: only the differing sentence is new audio
    other = await audio.ulaw(balance(9900, 340))
    assert other != first and audio.syntheses == ran + 1
    assert await audio.ulaw(balance(1250, 340)) == first
    # the same figures for another MSISDN are the same words: the same audio is right
    twin = dataclasses.replace(balance(1250, 340), msisdn="5559998877")
    assert await audio.ulaw(twin) == first


async def test_concurrent_requests_synthesise_once() -> None:
    audio = PromptAudio()
    results = await asyncio.gather(*(audio.ulaw(None) for _ in range(5)))
    assert len(set(results)) == 1 and audio.syntheses == len(prompt_sentences(None))


async def test_a_broken_voice_is_a_clear_error_and_not_cached() -> None:
    audio = PromptAudio(voice="no-such-voice-xx")
    with pytest.raises(SynthesisError):
        await audio.ulaw(None)
    with pytest.raises(SynthesisError):
        await audio.ulaw(None)


async def test_a_failing_sentence_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    audio = PromptAudio(timeout=0.5)
    real = audio._run

    async def slow_sox(argv: list[str], data: bytes) -> bytes:
        if argv[0] == "sox":
            argv = ["sleep", "5"]
        return await real(argv, data)

    monkeypatch.setattr(audio, "_run", slow_sox)
    with pytest.raises(SynthesisError, match="took longer"):
        await audio.ulaw(None)
