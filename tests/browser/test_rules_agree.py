"""The page's input rules (webui/js/validate.js) give the same codes as the MW's
(cellcelly.domain.selfcare_rules) for any typed text, so a form never passes in the browser and
then fails on the server, nor the other way round. Hypothesis draws the text; Chromium runs the JS."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webui_helpers import Stack

from cellcelly.domain import selfcare_rules as rules

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

# what people type: ASCII, Turkish and other letters, digits of other scripts, punctuation, spaces
ALPHABET = st.sampled_from(
    list("abcxyzABCXYZ0123456789 .-_'@+!*#?çğıöşüÇĞİÖŞÜéßΩж٣") + ["@example.com", "5321234567", "-"]
)
TEXT = st.lists(ALPHABET, min_size=1, max_size=40).map("".join)
DIGITISH = st.lists(st.sampled_from(list("0123456789 -5a")), min_size=1, max_size=22).map("".join)

CHECKS = """async (x) => {
  const v = await import('/js/validate.js');
  return {password: v.password(x), msisdn: v.msisdn(x), name: v.name(x), email: v.email(x.trim()),
          securityKey: v.securityKey(x), code: v.code(x), voucher: v.voucher(x)};
}"""


def server(x: str) -> dict[str, list[str]]:
    return {
        "password": rules.password_problems(x),
        "msisdn": rules.msisdn_problems(x),
        "name": rules.name_problems(x),
        "email": rules.email_problems(x.strip()),  # the page sends the e-mail trimmed
        "securityKey": rules.security_key_problems(x),
        "code": rules.code_problems(x),
        "voucher": rules.voucher_problems(x),
    }


def test_browser_and_server_rules_agree(stack: Stack, new_page: Any) -> None:
    page = new_page("desktop")
    page.goto("/")
    page.wait_for_selector("body[data-ready]")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(TEXT, DIGITISH))
    def agree(x: str) -> None:
        browser = page.evaluate(CHECKS, x)
        expected = server(x)
        if not x.strip():  # empty after trimming: the page says "required" before any rule
            expected["name"] = expected["email"] = ["required"]
        if not x.strip(" -"):
            expected["voucher"] = ["required"]
        assert browser == expected, x

    agree()
