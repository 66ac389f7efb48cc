"""The SRS rules as codes: what the API and the web UI both check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.domain import selfcare_rules as rules

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("password", "codes"),
    [
        ("Gizli-Parola1", []),
        ("ŞİRİNçiçek?", []),  # Turkish letters are upper and lower case letters
        ("Abcdefg h", ["needs_special"]),  # a space is no special character
        ("abc", ["too_short", "needs_upper", "needs_special"]),
        ("A" * 129 + "a!", ["too_long"]),
    ],
)
def test_password_rules(password: str, codes: list[str]):
    assert rules.password_problems(password) == codes


@pytest.mark.parametrize(
    "text", ["5321234567\n", "05321234567", "532123456", "5321234567 ", "５３２１２３４５６７"]
)
def test_msisdn_is_exactly_ten_ascii_digits_starting_with_5(text: str):
    assert rules.msisdn_problems(text) == ["msisdn_format"]


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_every_ten_digit_number_starting_with_5_is_valid(rest: str):
    assert rules.msisdn_problems("5" + rest) == []
    assert rules.msisdn_problems("4" + rest) == ["msisdn_format"]


def test_no_field_accepts_a_trailing_newline():
    assert rules.code_problems("123456\n") == ["code_format"]
    assert rules.email_problems("a@b.co\n") == ["email_format"]
    assert rules.voucher_problems("1234567890123456\n") == ["voucher_format"]


def test_names_emails_keys_and_vouchers():
    assert rules.name_problems("Çağrı Şükrü Öğüt-İğdır") == []
    assert rules.name_problems("O'Neil") == []
    assert rules.name_problems("R2D2") == ["name_format"]
    assert rules.name_problems("  ") == ["required"]
    assert rules.name_problems("a" * 51) == ["too_long"]
    assert rules.email_problems("ayşe@örnek.com.tr") == []
    assert rules.security_key_problems("abc") == ["security_key_format"]
    assert rules.voucher_problems("1234-5678 9012-3456") == []
    assert rules.normalise_voucher("1234-5678 9012-3456") == "1234567890123456"
