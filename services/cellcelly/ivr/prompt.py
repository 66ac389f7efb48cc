"""What the IVR says to a caller, as Turkish sentences and as 8 kHz G.711 µ-law audio.

Text: figures come from `BalanceSummary` and are written out in words (domain.turkish_numbers),
because espeak-ng reads digits and "12,50 TL" badly. Audio: each sentence is synthesised on its
own with `espeak-ng -v tr` and resampled to 8 kHz µ-law by `sox`; sentences are joined with a
short pause. Sentences are cached by their exact spoken text only: the same words always give the
same audio, and nothing about who asked is part of the key, so a cache hit can only ever replay the
words that this caller's own figures produced.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections import OrderedDict
from collections.abc import Sequence

from cellcelly.domain.balance_summary import BalanceSummary
from cellcelly.domain.turkish_numbers import (
    data_words,
    date_words,
    duration_words,
    money_words,
    sms_words,
)
from cellcelly.domain.units import Service
from cellcelly.errors import BackendError
from cellcelly.ivr.g711 import SAMPLE_RATE, ULAW_SILENCE, pcm16_wav, ulaw_to_pcm16

log = logging.getLogger(__name__)

GREETING = "Merhaba."
GOODBYE = "CellCelly'yi tercih ettiğiniz için teşekkür ederiz. İyi günler."
UNKNOWN_CALLER = (
    "Merhaba.",
    "CellCelly abonesi olmayan bir numaradan arıyorsunuz.",
    "Bakiye bilgisi için lütfen CellCelly hattınızdan arayın. İyi günler.",
)
SERVICE_UNAVAILABLE = (
    "Merhaba.",
    "Üzgünüz, bakiye bilginize şu anda ulaşılamıyor.",
    "Lütfen daha sonra tekrar arayın. İyi günler.",
)
# how espeak-ng's Turkish voice should say words it would otherwise read letter by letter or wrongly
# (an apostrophe before a suffix makes espeak-ng pause, so "CellCelly'yi" is said "Selseliyi")
_SPEECH = ((re.compile(r"\bCellCelly'?"), "Selseli"), (re.compile(r"\bSMS\b"), "es em es"))
PAUSE_SECONDS = 0.3


def prompt_sentences(summary: BalanceSummary | None) -> list[str]:
    """The sentences, as written (also what a test or a transcript shows)."""
    if summary is None:
        return list(UNKNOWN_CALLER)
    sentences = [GREETING]
    if summary.status != "active":
        sentences.append("Hattınız şu anda kullanıma kapalıdır.")
    sentences.append(f"Kalan bakiyeniz {money_words(summary.wallet)}.")
    voice, sms, data = (summary.allowance(s) for s in (Service.VOICE, Service.SMS, Service.DATA))
    if voice.total:
        sentences.append(f"Kalan konuşma süreniz {duration_words(voice.remaining)}.")
    if sms.total:
        sentences.append(f"Kalan mesaj hakkınız {sms_words(sms.remaining)}.")
    if data.total:
        sentences.append(f"Kalan internet hakkınız {data_words(data.remaining)}.")
    ends = [a.valid_until for a in summary.allowances if a.valid_until is not None]
    if ends:
        # valid_until is the first instant it is no longer valid: say the last day it is
        which = "Paketiniz" if len(summary.packages) <= 1 else "İlk sona eren paketiniz"
        sentences.append(f"{which} {date_words(min(ends) - 1)} tarihine kadar geçerlidir.")
    elif not any(a.total for a in summary.allowances):
        sentences.append("Kullanılabilir bir paketiniz bulunmuyor.")
    sentences.append(GOODBYE)
    return sentences


def prompt_text(summary: BalanceSummary | None) -> str:
    return " ".join(prompt_sentences(summary))


def speech_text(sentence: str) -> str:
    """The sentence as espeak-ng should read it ("SMS" -> "es em es")."""
    for pattern, spoken in _SPEECH:
        sentence = pattern.sub(spoken, sentence)
    return sentence


class SynthesisError(BackendError, RuntimeError):
    pass


def tools_missing() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


class PromptAudio:
    """Synthesises prompts; an LRU of sentence audio keyed by the spoken text (and the voice)."""

    def __init__(
        self, voice: str = "tr", speed: int = 160, cache_size: int = 512, timeout: float = 20.0
    ) -> None:
        self.voice, self.speed, self.timeout = voice, speed, timeout
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.syntheses = 0  # how many times espeak-ng really ran (for tests and metrics)
        self._voice_checked = False

    async def ulaw(self, summary: BalanceSummary | None) -> bytes:
        """Raw µ-law, 8 kHz mono: the payload the RTP stream carries."""
        return await self.ulaw_for(prompt_sentences(summary))

    async def wav(self, summary: BalanceSummary | None) -> bytes:
        """The same audio as a WAV file: 8 kHz, mono, 16-bit PCM (decoded from the µ-law)."""
        return pcm16_wav(ulaw_to_pcm16(await self.ulaw(summary)))

    async def ulaw_for(self, sentences: Sequence[str]) -> bytes:
        await self.check_voice()
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels (and reaps) the others
                tasks = [group.create_task(self.sentence(s)) for s in sentences]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        parts = [t.result() for t in tasks]
        pause = bytes([ULAW_SILENCE]) * int(PAUSE_SECONDS * SAMPLE_RATE)
        return pause + pause.join(parts) + pause

    async def sentence(self, text: str) -> bytes:
        spoken = speech_text(text)
        if (hit := self._cache.get(spoken)) is not None:
            self._cache.move_to_end(spoken)
            return hit
        if (running := self._inflight.get(spoken)) is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[spoken] = future
        try:
            audio = await self._synthesise(spoken)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody else awaited is not "never retrieved"
            raise
        finally:
            del self._inflight[spoken]
        future.set_result(audio)
        self._cache[spoken] = audio
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return audio

    async def check_voice(self) -> None:
        """espeak-ng falls back to its default (English) voice for an unknown one, silently: refuse."""
        if self._voice_checked:
            return
        listing = (await self._run(["espeak-ng", "--voices"], b"")).decode("utf-8", "replace")
        names: set[str] = set()
        for line in listing.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 5:
                names.update((fields[1], fields[3], fields[4], fields[4].rsplit("/", 1)[-1]))
        if self.voice not in names:
            raise SynthesisError(f"espeak-ng has no voice {self.voice!r} (apt-get install espeak-ng-data)")
        self._voice_checked = True

    async def _synthesise(self, spoken: str) -> bytes:
        await self.check_voice()
        self.syntheses += 1
        # text on stdin, never argv: a sentence starting with "-" must not become an option
        espeak = ["espeak-ng", "-v", self.voice, "-s", str(self.speed), "--stdin", "--stdout"]
        sox = ["sox", "-V1", "-t", "wav", "-", "-t", "ul", "-r", str(SAMPLE_RATE), "-c", "1", "-"]
        sox += ["rate", "-h", "norm", "-1"]
        wav = await self._run(espeak, spoken.encode("utf-8"))
        audio = await self._run(sox, wav)
        if not audio:
            raise SynthesisError(f"no audio for {spoken!r}")
        return audio

    async def _run(self, argv: list[str], data: bytes) -> bytes:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise SynthesisError(f"{argv[0]} is not installed (apt-get install {argv[0]})") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), self.timeout)
        except BaseException as exc:  # timeout or cancellation: never leave the process behind
            if proc.returncode is None:
                proc.kill()
            await asyncio.shield(proc.wait())
            if isinstance(exc, TimeoutError):
                raise SynthesisError(f"{argv[0]} took longer than {self.timeout} s") from None
            raise
        if proc.returncode != 0:
            raise SynthesisError(
                f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[:200]}"
            )
        return out


_default: PromptAudio | None = None


def default_audio() -> PromptAudio:
    global _default
    if _default is None:
        _default = PromptAudio()
    return _default


async def prompt_wav(summary: BalanceSummary | None) -> bytes:
    """A complete WAV file (8 kHz, mono, 16-bit PCM) of what a caller with this balance hears."""
    return await default_audio().wav(summary)


async def prompt_ulaw(summary: BalanceSummary | None) -> bytes:
    """Raw G.711 µ-law (8 kHz mono) of the same prompt, as the RTP stream carries it."""
    return await default_audio().ulaw(summary)
