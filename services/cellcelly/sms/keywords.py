"""Keywords of the short code, matched the way Turkish subscribers type them.

Python's str.upper() is not Turkish: "kalan" is fine, but "yardım".upper() keeps "I" and
"bakiye".upper() gives "BAKIYE" while a Turkish keyboard writes "BAKİYE". We upper-case with the
Turkish i/ı pairs and then fold İ and I together, so every one of "yardim", "yardım", "YARDIM",
"Yardım" and "YARDİM" (phones without Turkish keys) is the same keyword.
"""

from __future__ import annotations

import unicodedata
from enum import Enum

_TURKISH_UPPER = str.maketrans({"i": "İ", "ı": "I"})
_FOLD = str.maketrans({"İ": "I"})
_TRIM = " \t\r\n.,;:!?'\"()[]{}-_*#/\\"


class Keyword(Enum):
    KALAN = "KALAN"  # remaining balances
    YARDIM = "YARDIM"  # the list of keywords


def turkish_upper(text: str) -> str:
    return unicodedata.normalize("NFC", text).translate(_TURKISH_UPPER).upper()


def fold(text: str) -> str:
    """A matching key: Turkish upper case with İ/I folded, trimmed, inner whitespace collapsed.

    A decomposed "İ" (I + U+0307, as some keyboards send it) folds the same as the composed one.
    """
    upper = turkish_upper(text).translate(_FOLD).replace("\u0307", "")
    return " ".join(upper.split()).strip(_TRIM)


# folded spelling -> keyword (each written as people write it; folding makes the variants)
_ALIASES = {
    fold(word): keyword
    for word, keyword in (
        ("KALAN", Keyword.KALAN),
        ("BAKİYE", Keyword.KALAN),
        ("YARDIM", Keyword.YARDIM),
        ("HELP", Keyword.YARDIM),
    )
}

# shown to subscribers in help texts, in this order
SHOWN = (("KALAN", "kalan dakika, SMS, internet ve TL bakiyeniz"), ("YARDIM", "bu liste"))


def match(text: str) -> Keyword | None:
    """The keyword a message asks for: the whole text, else its first word ("kalan lütfen")."""
    key = fold(text)
    if key in _ALIASES:
        return _ALIASES[key]
    first = key.split(" ", 1)[0].strip(_TRIM) if key else ""
    return _ALIASES.get(first)
