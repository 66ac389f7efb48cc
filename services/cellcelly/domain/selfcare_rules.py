"""The SRS rules for what subscribers type, as codes the API and the web UI both speak.

Each check returns the codes of every rule broken (empty: valid), so a form can show them all at
once. Letters are Unicode letters: Turkish ç ğ ı İ ö ş ü count as letters, and as upper or
lower case as Python's Unicode tables say ("Ş".isupper(), "ı".islower()).
"""

from __future__ import annotations

import re

from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn

PASSWORD_MIN = 8
PASSWORD_MAX = 128  # argon2 takes any length; this bounds the work one request can ask for
NAME_MAX = 50
SECURITY_KEY_MIN, SECURITY_KEY_MAX = 4, 32

# used with fullmatch: "$" alone would let a trailing newline through
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_CODE = re.compile(r"[0-9]{6}")
_VOUCHER = re.compile(r"[0-9]{16}")


def password_problems(password: str) -> list[str]:
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append("too_short")
    if len(password) > PASSWORD_MAX:
        problems.append("too_long")
    if not any(c.isupper() for c in password):
        problems.append("needs_upper")
    if not any(c.islower() for c in password):
        problems.append("needs_lower")
    if not any(not c.isalnum() and not c.isspace() for c in password):  # a space is no special character
        problems.append("needs_special")
    return problems


def msisdn_problems(msisdn: str) -> list[str]:
    """Digits only, 10 of them, starting with 5: the national form, as the SRS asks."""
    try:
        Msisdn(msisdn)
    except InvalidMsisdn:
        return ["msisdn_format"]
    return []


def name_problems(name: str) -> list[str]:
    text = name.strip()
    if not text:
        return ["required"]
    if len(text) > NAME_MAX:
        return ["too_long"]
    if not all(c.isalpha() or c in " -'" for c in text) or not any(c.isalpha() for c in text):
        return ["name_format"]
    return []


def email_problems(email: str) -> list[str]:
    return [] if len(email) <= 254 and _EMAIL.fullmatch(email) else ["email_format"]


def security_key_problems(key: str) -> list[str]:
    return [] if SECURITY_KEY_MIN <= len(key) <= SECURITY_KEY_MAX else ["security_key_format"]


def code_problems(code: str) -> list[str]:
    return [] if _CODE.fullmatch(code) else ["code_format"]


def normalise_voucher(text: str) -> str:
    """ "1234-5678 9012 3456" -> "1234567890123456" (what is printed on a card has separators)."""
    return "".join(c for c in text if c not in " -")


def voucher_problems(text: str) -> list[str]:
    return [] if _VOUCHER.fullmatch(normalise_voucher(text)) else ["voucher_format"]
