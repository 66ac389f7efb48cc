"""The one MSISDN type: every form an edge accepted before it still parses to the same national
number, nothing else does, and formatting parses back."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cellcelly.domain.errors import DomainError
from cellcelly.domain.msisdn import InvalidMsisdn, Msisdn

pytestmark = pytest.mark.unit

national = st.text(alphabet="0123456789", min_size=9, max_size=9).map(lambda rest: "5" + rest)
# the characters the old parsers cared about, plus digits of other scripts and a newline
noise = st.text(alphabet="0123456789+ tel:msisdn-٣５\n\t", max_size=20)


# The three parsers this type replaced, verbatim (ocs/schemas.py, dgw/gy.py, domain/selfcare_rules.py):
# the reference for "every edge still accepts what it did".
def _old_ocs(value: str) -> str | None:
    text = value.strip()
    for prefix in ("msisdn-", "tel:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.removeprefix("+")
    if len(text) == 12 and text.startswith("90"):
        text = text[2:]
    return text if re.match(r"^5\d{9}$", text) else None


def _old_gy(value: str) -> str | None:
    match = re.match(r"^(?:90)?(5\d{9})$", value.strip().removeprefix("+"))
    return match[1] if match else None


def _old_mw(value: str) -> bool:
    return re.fullmatch(r"5[0-9]{9}", value) is not None


def _parsed(text: str, **options: bool) -> str | None:
    try:
        return Msisdn.parse(text, **options).national
    except InvalidMsisdn:
        return None


@given(national)
def test_every_written_form_parses_to_the_national_number(number: str) -> None:
    for form in (
        number,
        "90" + number,
        "+90" + number,
        "+" + number,
        "tel:+90" + number,
        "tel:" + number,
        "msisdn-" + number,
        "msisdn-90" + number,
        f"  {number}\n",
    ):
        assert Msisdn.parse(form).national == number, form
    assert Msisdn.parse("0" + number, trunk=True).national == number


@given(national)
def test_formats_parse_back(number: str) -> None:
    msisdn = Msisdn(number)
    assert str(msisdn) == number
    assert msisdn.international == "90" + number and msisdn.e164 == "+90" + number
    assert (
        Msisdn.parse(msisdn.international) == Msisdn.parse(msisdn.e164) == Msisdn.parse(str(msisdn)) == msisdn
    )


@given(
    noise | st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=9, max_size=9).map("5".__add__)
)
@example("5321234567")
@example("05321234567")
@example("+905321234567")
@example("5" + "²" * 9)  # numeric to `isdigit`, not an ASCII digit
def test_the_edges_accept_what_they_did(text: str) -> None:
    """OCS and Gy: whatever the old parser took (in ASCII digits) parses to the same number; the
    self-care forms: exactly what they took."""
    new = _parsed(text)
    for old in (_old_ocs(text), _old_gy(text)):
        if old is not None and old.isascii():
            assert new == old
    assert (_parsed_national(text) is not None) == _old_mw(text)
    if new is not None:
        assert re.fullmatch(r"5[0-9]{9}", new)


def _parsed_national(text: str) -> Msisdn | None:
    try:
        return Msisdn(text)
    except InvalidMsisdn:
        return None


@given(st.text(max_size=24))
def test_anything_else_is_refused_with_a_domain_error(text: str) -> None:
    try:
        parsed = Msisdn.parse(text)
    except InvalidMsisdn as exc:
        assert isinstance(exc, DomainError) and isinstance(exc, ValueError)  # pydantic reads ValueError
        return
    assert re.fullmatch(r"5[0-9]{9}", parsed.national)


@pytest.mark.parametrize(
    "text",
    [
        "4321234567",
        "532123456",
        "53212345678",
        "905321234567 x",
        "0090" + "5321234567",
        "05321234567",  # the trunk 0 only where the edge says so (SIP, SMPP national)
        "5" + "٣" * 9,  # Arabic-Indic digits: `\d` let these into the records before
        "５３２１２３４５６７",
    ],
)
def test_rejections(text: str) -> None:
    with pytest.raises(InvalidMsisdn):
        Msisdn.parse(text)


@pytest.mark.parametrize("text", ["905321234567", "+905321234567", " 5321234567", "5321234567\n"])
def test_the_value_itself_is_only_the_national_form(text: str) -> None:
    with pytest.raises(InvalidMsisdn):
        Msisdn(text)
