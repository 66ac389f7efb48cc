"""Numbers, money, durations and sizes written out in Turkish words, the way a person says them.

A speech engine reads "12,50 TL" or "7000" badly, so every figure the IVR speaks is turned into
words here first. Turkish drops the "one" before "yüz" (100) and before "bin" (1000) when it stands
alone ("yüz", "bin", "iki bin"), but keeps it before the larger scales ("bir milyon").
"""

from __future__ import annotations

import time

from cellcelly.domain.money import KURUS_PER_TL

ONES = ("sıfır", "bir", "iki", "üç", "dört", "beş", "altı", "yedi", "sekiz", "dokuz")
TENS = ("", "on", "yirmi", "otuz", "kırk", "elli", "altmış", "yetmiş", "seksen", "doksan")
HUNDRED = "yüz"
THOUSAND = "bin"
# short scale, as Turkish counts: 10^6, 10^9, 10^12, 10^15, 10^18
SCALES = ("bin", "milyon", "milyar", "trilyon", "katrilyon", "kentilyon")
MAX_NUMBER = 1000 ** (len(SCALES) + 1) - 1
MONTHS = (
    "Ocak",
    "Şubat",
    "Mart",
    "Nisan",
    "Mayıs",
    "Haziran",
    "Temmuz",
    "Ağustos",
    "Eylül",
    "Ekim",
    "Kasım",
    "Aralık",
)
TURKEY_UTC_OFFSET = 3 * 3600  # Türkiye keeps UTC+3 all year (no daylight saving since 2016)
SMS_WORD = "SMS"  # written form; a speech layer may spell it out ("es em es")

_MB = 1024 * 1024
_GB = 1024 * _MB


def _below_thousand(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    words: list[str] = []
    if hundreds:
        words += [HUNDRED] if hundreds == 1 else [ONES[hundreds], HUNDRED]
    if tens:
        words.append(TENS[tens])
    if ones:
        words.append(ONES[ones])
    return words


def number_words(n: int) -> str:
    """12 -> "on iki", 100 -> "yüz", 1000 -> "bin", 2000 -> "iki bin", 10**6 -> "bir milyon"."""
    if n < 0:
        return "eksi " + number_words(-n)
    if n == 0:
        return ONES[0]
    if n > MAX_NUMBER:
        raise ValueError(f"too large to say: {n}")
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    words: list[str] = []
    for scale in range(len(groups) - 1, -1, -1):
        group = groups[scale]
        if not group:
            continue
        if scale == 1 and group == 1:
            words.append(THOUSAND)  # "bin", never "bir bin"
            continue
        words += _below_thousand(group)
        if scale:
            words.append(SCALES[scale - 1])
    return " ".join(words)


def money_words(kurus: int) -> str:
    """1250 -> "on iki lira elli kuruş", 10000 -> "yüz lira", 50 -> "elli kuruş", 0 -> "sıfır lira"."""
    if kurus < 0:
        return "eksi " + money_words(-kurus)
    lira, rest = divmod(kurus, KURUS_PER_TL)
    parts: list[str] = []
    if lira or not rest:
        parts.append(f"{number_words(lira)} lira")
    if rest:
        parts.append(f"{number_words(rest)} kuruş")
    return " ".join(parts)


def duration_words(seconds: int) -> str:
    """Whole minutes, rounded down (we never promise a second that is not there): 20400 -> "üç yüz
    kırk dakika". Under a minute the seconds are said ("kırk beş saniye"); 0 -> "sıfır dakika"."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    minutes = seconds // 60
    if minutes or not seconds:
        return f"{number_words(minutes)} dakika"
    return f"{number_words(seconds)} saniye"


def sms_words(count: int) -> str:
    """7000 -> "yedi bin SMS"."""
    if count < 0:
        raise ValueError(f"negative count: {count}")
    return f"{number_words(count)} {SMS_WORD}"


def data_words(octets: int) -> str:
    """Binary sizes (1 GB = 1024 MB), rounded down to the megabyte: 3 GB -> "üç gigabayt",
    512 MB -> "beş yüz on iki megabayt", 3.5 GB -> "üç gigabayt beş yüz on iki megabayt".
    Under a megabyte the kilobytes are said; 0 -> "sıfır megabayt"."""
    if octets < 0:
        raise ValueError(f"negative size: {octets}")
    gb, rest = divmod(octets, _GB)
    mb = rest // _MB
    if not gb and not mb:
        kb = octets // 1024
        return f"{number_words(kb)} kilobayt" if kb else f"{ONES[0]} megabayt"
    parts: list[str] = []
    if gb:
        parts.append(f"{number_words(gb)} gigabayt")
    if mb:
        parts.append(f"{number_words(mb)} megabayt")
    return " ".join(parts)


def day_month_words(day: int, month: int) -> str:
    """(31, 12) -> "otuz bir Aralık"."""
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError(f"not a date: day {day}, month {month}")
    return f"{number_words(day)} {MONTHS[month - 1]}"


def date_words(epoch_seconds: int, utc_offset: int = TURKEY_UTC_OFFSET) -> str:
    """The calendar day in Türkiye of an instant, as spoken: "otuz bir Aralık"."""
    tm = time.gmtime(epoch_seconds + utc_offset)
    return day_month_words(tm.tm_mday, tm.tm_mon)
