"""The gateway's check for unknown mandatory AVPs (RFC 6733 §7.1.5, answered 5001): the first one
in `Message.walk`'s order, at any depth, 3GPP AVPs exempt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.dgw.gateway import _unsupported_mandatory
from cellcelly.diameter.codec import DICTIONARY, Avp, Message
from cellcelly.diameter.constants import AVP_M, VENDOR_3GPP, Cmd, Code

pytestmark = pytest.mark.unit

UNKNOWN = 64_999  # no IETF AVP of ours

leaves = st.builds(
    Avp,
    code=st.sampled_from([UNKNOWN, int(Code.SESSION_ID), int(Code.CC_TIME), 3, 1]),
    flags=st.sampled_from([0, AVP_M]),
    vendor=st.sampled_from([0, 0, VENDOR_3GPP]),
    data=st.just(b"\x00\x00\x00\x01"),
)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        Avp,
        code=st.sampled_from([int(Code.MULTIPLE_SERVICES_CREDIT_CONTROL), 873, UNKNOWN]),
        flags=st.sampled_from([0, AVP_M]),
        vendor=st.sampled_from([0, VENDOR_3GPP]),
        children=st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


def _by_walk(avps: list[Avp]) -> Avp | None:
    """The rule as written first: every AVP `walk` yields, the dictionary's tuple keys."""
    for avp in Message(Cmd.CREDIT_CONTROL, 0, 4, avps=avps).walk():
        if avp.flags & AVP_M and avp.vendor == 0 and (avp.code, 0) not in DICTIONARY:
            return avp
    return None


@given(st.lists(trees, max_size=6))
def test_the_first_unknown_mandatory_ietf_avp_at_any_depth(avps: list[Avp]) -> None:
    assert _unsupported_mandatory(avps) is _by_walk(avps)


def test_nested_in_a_3gpp_group_and_after_an_exempt_one() -> None:
    exempt = Avp(UNKNOWN, AVP_M, VENDOR_3GPP, b"")  # 3GPP: not refused
    inner = Avp(UNKNOWN, AVP_M, 0, b"")
    optional = Avp(UNKNOWN + 1, 0, 0, b"")  # no M bit: ignored
    info = Avp(873, AVP_M, VENDOR_3GPP, b"", [exempt, optional, Avp(874, AVP_M, VENDOR_3GPP, b"", [inner])])
    assert _unsupported_mandatory([Avp.utf8(Code.SESSION_ID, "s"), info]) is inner
    assert _unsupported_mandatory([Avp.utf8(Code.SESSION_ID, "s"), exempt, optional]) is None
