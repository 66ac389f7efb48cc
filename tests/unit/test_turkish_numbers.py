"""Turkish number words: known figures, and a strict words -> number parser (written here, for the
test only) that must give back every number; it refuses the wrong forms ("bir yüz", a lone "bir bin")."""

from __future__ import annotations

import calendar
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.domain.turkish_numbers import (
    MAX_NUMBER,
    MONTHS,
    ONES,
    SCALES,
    TENS,
    data_words,
    date_words,
    day_month_words,
    duration_words,
    money_words,
    number_words,
    sms_words,
)

pytestmark = pytest.mark.unit

_ONE = {w: i for i, w in enumerate(ONES) if i}
_TEN = {w: i * 10 for i, w in enumerate(TENS) if i}
_SCALE = {w: 1000 ** (i + 1) for i, w in enumerate(SCALES)}


def _group(words: list[str]) -> int:
    """One group below a thousand, in canonical form only: [ONES yüz] [TENS] [ONES]."""
    value, i = 0, 0
    if i < len(words) and words[i] == "yüz":
        value, i = 100, 1
    elif i + 1 < len(words) and words[i] in _ONE and words[i + 1] == "yüz":
        if words[i] == "bir":
            raise ValueError("'bir yüz' is not Turkish")
        value, i = _ONE[words[i]] * 100, 2
    if i < len(words) and words[i] in _TEN:
        value, i = value + _TEN[words[i]], i + 1
    if i < len(words) and words[i] in _ONE:
        value, i = value + _ONE[words[i]], i + 1
    if i != len(words) or not value:
        raise ValueError(f"not a group: {words}")
    return value


def parse_number(text: str) -> int:
    words = text.split()
    if words == ["sıfır"]:
        return 0
    if words[:1] == ["eksi"]:
        return -parse_number(" ".join(words[1:]))
    total, group, last_scale = 0, [], MAX_NUMBER + 1
    for word in [*words, "<end>"]:
        if word in _SCALE or word == "<end>":
            scale = _SCALE.get(word, 1)
            if scale >= last_scale:
                raise ValueError(f"scales out of order in {text!r}")
            if word == "bin" and not group:
                value = 1  # "bin" alone is one thousand
            elif not group:
                if word == "<end>":
                    break
                raise ValueError(f"a scale without a count in {text!r}")
            else:
                value = _group(group)
                if word == "bin" and group == ["bir"]:
                    raise ValueError("'bir bin' is not Turkish")
            total += value * scale
            group, last_scale = [], scale
        else:
            group.append(word)
    return total


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "sıfır"),
        (1, "bir"),
        (10, "on"),
        (12, "on iki"),
        (45, "kırk beş"),
        (100, "yüz"),
        (101, "yüz bir"),
        (200, "iki yüz"),
        (340, "üç yüz kırk"),
        (999, "dokuz yüz doksan dokuz"),
        (1000, "bin"),
        (1001, "bin bir"),
        (1100, "bin yüz"),
        (2000, "iki bin"),
        (7000, "yedi bin"),
        (101_000, "yüz bir bin"),
        (100_000, "yüz bin"),
        (1_000_000, "bir milyon"),
        (1_001_000, "bir milyon bin"),
        (2_000_000_000, "iki milyar"),
        (-5, "eksi beş"),
    ],
)
def test_known_numbers(n: int, words: str) -> None:
    assert number_words(n) == words


def test_too_large_is_refused() -> None:
    with pytest.raises(ValueError):
        number_words(MAX_NUMBER + 1)


@given(st.integers(min_value=-MAX_NUMBER, max_value=MAX_NUMBER))
def test_words_round_trip_and_stay_canonical(n: int) -> None:
    text = number_words(n)
    assert parse_number(text) == n
    assert not re.search(r"\d", text)
    words = text.split()
    for before, after in zip(words, words[1:], strict=False):
        assert (before, after) != ("bir", "yüz")
    if words[:2] == ["bir", "bin"]:
        pytest.fail(f"{n} said as {text!r}")


@pytest.mark.parametrize(
    ("kurus", "words"),
    [
        (1250, "on iki lira elli kuruş"),
        (10000, "yüz lira"),
        (50, "elli kuruş"),
        (0, "sıfır lira"),
        (100, "bir lira"),
        (100_001, "bin lira bir kuruş"),
    ],
)
def test_money(kurus: int, words: str) -> None:
    assert money_words(kurus) == words


@given(st.integers(min_value=0, max_value=10**15))
def test_money_round_trips(kurus: int) -> None:
    text = money_words(kurus)
    match = re.fullmatch(r"(?:(?P<lira>.+?) lira)? ?(?:(?P<kurus>.+) kuruş)?", text)
    assert match and (match["lira"] or match["kurus"])
    lira = parse_number(match["lira"]) if match["lira"] else 0
    rest = parse_number(match["kurus"]) if match["kurus"] else 0
    assert 0 <= rest < 100 and lira * 100 + rest == kurus
    assert not re.search(r"\d", text)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (340 * 60, "üç yüz kırk dakika"),
        (340 * 60 + 59, "üç yüz kırk dakika"),
        (45, "kırk beş saniye"),
        (0, "sıfır dakika"),
    ],
)
def test_durations_round_down_to_minutes(seconds: int, words: str) -> None:
    assert duration_words(seconds) == words


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_never_promises_more_than_is_left(seconds: int) -> None:
    number, unit = duration_words(seconds).rsplit(" ", 1)
    value = parse_number(number)
    assert (value * 60 if unit == "dakika" else value) <= seconds
    assert unit == "saniye" or seconds - value * 60 < 60


def test_sms_and_data() -> None:
    assert sms_words(7000) == "yedi bin SMS"
    assert data_words(3 * 1024**3) == "üç gigabayt"
    assert data_words(512 * 1024**2) == "beş yüz on iki megabayt"
    assert data_words(3 * 1024**3 + 512 * 1024**2 + 17) == "üç gigabayt beş yüz on iki megabayt"
    assert data_words(2048) == "iki kilobayt"
    assert data_words(0) == "sıfır megabayt"


@given(st.integers(min_value=0, max_value=10**15))
def test_data_rounds_down_to_the_megabyte(octets: int) -> None:
    text = data_words(octets)
    said = 0
    for number, unit in re.findall(r"(.+?) (gigabayt|megabayt|kilobayt) ?", text):
        said += parse_number(number) * {"gigabayt": 1024**3, "megabayt": 1024**2, "kilobayt": 1024}[unit]
    assert said <= octets
    assert octets - said < (1024**2 if octets >= 1024**2 else 1024)


def test_dates() -> None:
    assert day_month_words(31, 12) == "otuz bir Aralık"
    # 2026-12-31 21:30 UTC is already 1 January in Türkiye (UTC+3)
    assert date_words(calendar.timegm((2026, 12, 31, 20, 59, 0))) == "otuz bir Aralık"
    assert date_words(calendar.timegm((2026, 12, 31, 21, 30, 0))) == "bir Ocak"
    with pytest.raises(ValueError):
        day_month_words(0, 5)


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_every_instant_has_a_spoken_day(epoch: int) -> None:
    day, month = date_words(epoch).rsplit(" ", 1)
    assert month in MONTHS and 1 <= parse_number(day) <= 31
