"""The IVR's sentences: the right words for given figures, nothing in digits, speech spellings."""

from __future__ import annotations

import calendar
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.domain.balance_summary import Allowance, BalanceSummary
from cellcelly.domain.units import Service
from cellcelly.ivr.prompt import prompt_sentences, prompt_text, speech_text

pytestmark = pytest.mark.unit
MB = 1024 * 1024
ENDS = calendar.timegm((2026, 12, 31, 21, 0, 0))  # 1 Jan 00:00 in Türkiye: valid through 31 Dec


def summary(
    wallet: int = 1250,
    voice: int = 340 * 60,
    sms: int = 7000,
    data: int = 3 * 1024 * MB,
    status: str = "active",
    totals: int = 1,
    ends: int | None = ENDS,
) -> BalanceSummary:
    return BalanceSummary(
        "5321234567",
        status,
        wallet,
        (
            Allowance(Service.VOICE, voice, (voice or 1) * totals, ends),
            Allowance(Service.SMS, sms, (sms or 1) * totals, ends),
            Allowance(Service.DATA, data, (data or 1) * totals, ends),
        ),
        ("DIYARBAKIR",) if totals else (),
    )


def test_known_caller_hears_every_figure_in_words() -> None:
    assert prompt_sentences(summary()) == [
        "Merhaba.",
        "Kalan bakiyeniz on iki lira elli kuruş.",
        "Kalan konuşma süreniz üç yüz kırk dakika.",
        "Kalan mesaj hakkınız yedi bin SMS.",
        "Kalan internet hakkınız üç gigabayt.",
        "Paketiniz otuz bir Aralık tarihine kadar geçerlidir.",
        "CellCelly'yi tercih ettiğiniz için teşekkür ederiz. İyi günler.",
    ]


def test_other_figures() -> None:
    text = prompt_text(summary(wallet=10000, voice=59, sms=0, data=512 * MB))
    assert "Kalan bakiyeniz yüz lira." in text
    assert "Kalan konuşma süreniz elli dokuz saniye." in text
    assert "Kalan mesaj hakkınız sıfır SMS." in text
    assert "Kalan internet hakkınız beş yüz on iki megabayt." in text


def test_no_package_and_suspended() -> None:
    text = prompt_text(summary(wallet=0, voice=0, sms=0, data=0, totals=0, ends=None, status="suspended"))
    assert "Hattınız şu anda kullanıma kapalıdır." in text
    assert "Kalan bakiyeniz sıfır lira." in text
    assert "Kullanılabilir bir paketiniz bulunmuyor." in text
    assert "dakika" not in text and "tarihine" not in text


def test_unknown_caller_gets_the_polite_message() -> None:
    text = prompt_text(None)
    assert "CellCelly abonesi olmayan bir numaradan arıyorsunuz." in text
    assert "bakiyeniz" not in text
    assert len(text) < len(prompt_text(summary()))


def test_speech_spellings() -> None:
    assert speech_text("Kalan mesaj hakkınız yedi bin SMS.") == "Kalan mesaj hakkınız yedi bin es em es."
    assert speech_text("CellCelly'yi tercih") == "Selseliyi tercih"
    assert speech_text("CellCelly abonesi") == "Selseli abonesi"


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**8),
    st.integers(0, 10**6),
    st.integers(0, 10**13),
    st.integers(0, 4_000_000_000),
)
def test_no_digits_ever_reach_the_speech_engine(
    wallet: int, voice: int, sms: int, data: int, ends: int
) -> None:
    for sentence in prompt_sentences(summary(wallet, voice, sms, data, ends=ends)):
        assert not re.search(r"\d", speech_text(sentence)), sentence
