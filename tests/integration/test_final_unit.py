"""Final-Unit-Indication REDIRECT to a top-up page per rating group, and Quota-Holding-Time: from
the catalogue, through the charging engine, the DGW↔OCS wire form and the OCS's JSON answer, onto
the Gy answer, where python-diameter (an independent decoder) and our client parser read them."""

from __future__ import annotations

import pytest
from diameter.message import Message as PdMessage
from gy_client import voice_ccr

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.codec import answer_from_list, answer_to_list
from cellcelly.dgw.gy import build_cca, parse_ccr
from cellcelly.diameter.ccr import parse_cca
from cellcelly.diameter.codec import decode
from cellcelly.diameter.peer import LocalPeer
from cellcelly.domain.charging import (
    ChargeAnswer,
    ChargeRequest,
    RequestType,
    ResultCode,
    ServiceResult,
    ServiceUsage,
    charge,
)
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.provisioning import open_account
from cellcelly.domain.units import Service
from cellcelly.ocs.handler import answer_json
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

URL = "https://selfcare.example.com/#/topup"
SEED = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
REDIRECTING = parse_catalogue_text(
    SEED.replace(
        'final_unit: {redirect_url: "", redirect_rating_groups: []}',
        f'final_unit: {{redirect_url: "{URL}", redirect_rating_groups: [7]}}',
    ).replace("quota_holding_time: 0 ", "quota_holding_time: 120 ")
)
NOW = 1_800_000_000
M = "5371234567"


def call_abroad(rg: int, number: int, kind: RequestType, used: int = 0) -> ChargeRequest:
    usage = ServiceUsage(
        rg, Service.VOICE, None if kind is RequestType.TERMINATE else 600, used, "4915112345678"
    )
    return ChargeRequest(f"call-{rg}", kind, number, M, (usage,), "90")


def last_grant(rg: int) -> ServiceResult:
    """A call abroad (2.50 TL/min, wallet 100 TL) on rating group `rg` until the money runs out."""
    acc = open_account(M, REDIRECTING, None, NOW).account
    out = charge(acc, REDIRECTING, call_abroad(rg, 0, RequestType.INITIAL), NOW)
    results = [out.answer.services[0]]
    for n in range(1, 20):
        assert out.account is not None
        acc = out.account
        out = charge(acc, REDIRECTING, call_abroad(rg, n, RequestType.UPDATE, results[-1].granted), NOW)
        results.append(out.answer.services[0])
        if results[-1].final_unit:
            break
    assert all(r.quota_holding_time == 120 for r in results if r.granted)  # on every grant
    assert not any(r.redirect_url for r in results[:-1])  # only the last grant says it
    return results[-1]


def test_the_last_grant_redirects_only_the_rating_groups_the_catalogue_names() -> None:
    assert (
        REDIRECTING.policy.redirect_rating_groups == frozenset({7}) and REDIRECTING.policy.redirect_url == URL
    )
    redirected, terminated = last_grant(7), last_grant(1)
    assert redirected.final_unit and redirected.redirect_url == URL and redirected.granted > 0
    assert terminated.final_unit and terminated.redirect_url == ""
    seed = parse_catalogue_text(SEED).policy
    assert (seed.redirect_url, seed.redirect_rating_groups, seed.quota_holding_time) == ("", frozenset(), 0)


def test_the_gy_answer_carries_redirect_server_and_quota_holding_time() -> None:
    request = voice_ccr("gw;fui", 2, 3, M, rg=7)
    req, _ = parse_ccr(decode(request.encode()))
    answer = ChargeAnswer(
        req.session_id,
        req.request_type,
        3,
        ResultCode.SUCCESS,
        (ServiceResult(7, ResultCode.SUCCESS, 60, 600, True, URL, 120),),
    )
    wire = build_cca(request, req, answer, LocalPeer("ocs.example", "example")).encode()
    (mscc,) = PdMessage.from_bytes(wire).multiple_services_credit_control  # python-diameter's reading
    assert mscc.final_unit_indication.final_unit_action == 1  # REDIRECT
    server = mscc.final_unit_indication.redirect_server
    assert (server.redirect_address_type, server.redirect_server_address) == (2, URL)  # URL
    assert mscc.quota_holding_time == 120
    (ours,) = parse_cca(decode(wire)).services
    assert (ours.final_unit, ours.redirect_url, ours.quota_holding_time) == (True, URL, 120)
    plain = ChargeAnswer(
        req.session_id,
        req.request_type,
        3,
        ResultCode.SUCCESS,
        (ServiceResult(7, ResultCode.SUCCESS, 60, 600, True),),
    )
    (mscc,) = PdMessage.from_bytes(
        build_cca(request, req, plain, LocalPeer("h", "r")).encode()
    ).multiple_services_credit_control
    assert (
        mscc.final_unit_indication.final_unit_action == 0
        and mscc.final_unit_indication.redirect_server is None
    )
    assert mscc.quota_holding_time is None


def test_the_wire_form_keeps_them_and_reads_the_old_form() -> None:
    full = ChargeAnswer(
        "s",
        RequestType.UPDATE,
        1,
        ResultCode.SUCCESS,
        (ServiceResult(7, ResultCode.SUCCESS, 60, 600, True, URL, 120),),
    )
    assert answer_from_list(answer_to_list(full)) == full
    plain = ChargeAnswer(
        "s",
        RequestType.UPDATE,
        1,
        ResultCode.SUCCESS,
        (ServiceResult(1, ResultCode.SUCCESS, 60, 600, False),),
    )
    assert len(answer_to_list(plain)[4][0]) == 5  # an answer without them costs nothing more
    assert answer_from_list(answer_to_list(plain)) == plain


def test_the_ocs_json_answer_says_redirect_as_ts_32_291_does() -> None:
    req = call_abroad(7, 1, RequestType.UPDATE)
    answer = ChargeAnswer(
        req.session_id,
        req.request_type,
        1,
        ResultCode.SUCCESS,
        (ServiceResult(7, ResultCode.SUCCESS, 60, 600, True, URL, 120),),
    )
    (info,) = answer_json(answer, req)["multipleUnitInformation"]
    assert info["finalUnitIndication"] == {
        "finalUnitAction": "REDIRECT",
        "redirectServer": {"redirectAddressType": "URL", "redirectServerAddress": URL},
    }
    assert info["quotaHoldingTime"] == 120


@pytest.mark.parametrize(
    ("final_unit", "holding", "field"),
    [
        ('{redirect_url: "", redirect_rating_groups: [3]}', "0", "need a redirect_url"),
        ('{redirect_url: "ftp://x", redirect_rating_groups: [3]}', "0", "redirect_url"),
        ('{redirect_url: "https://x", redirect_rating_groups: ["3"]}', "0", "redirect_rating_groups"),
        ("[1]", "0", "charging.final_unit"),
        ('{redirect_url: "", redirect_rating_groups: []}', "-1", "quota_holding_time"),
    ],
)
def test_a_bad_final_unit_section_is_refused_with_the_field_named(
    final_unit: str, holding: str, field: str
) -> None:
    text = SEED.replace('{redirect_url: "", redirect_rating_groups: []}', final_unit).replace(
        "quota_holding_time: 0 ", f"quota_holding_time: {holding} "
    )
    with pytest.raises(CatalogueError) as info:
        parse_catalogue_text(text)
    assert any(field in p for p in info.value.problems), info.value.problems
