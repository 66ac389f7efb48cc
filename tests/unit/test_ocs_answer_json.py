"""The Nchf answer's JSON as `answer_json` writes it, shape by shape."""

from __future__ import annotations

import re
import time

import pytest

from cellcelly.domain.charging import (
    ChargeAnswer,
    ChargeRequest,
    RequestType,
    ResultCode,
    ServiceResult,
    ServiceUsage,
)
from cellcelly.domain.units import Service
from cellcelly.ocs.handler import answer_json

pytestmark = pytest.mark.unit


def test_every_field_of_an_answer_with_several_rating_groups() -> None:
    req = ChargeRequest(
        "s1",
        RequestType.UPDATE,
        3,
        "905321234567",
        (
            ServiceUsage(1, Service.VOICE, 60),
            ServiceUsage(2, Service.DATA),
            ServiceUsage(3, Service.SMS),
            ServiceUsage(4, Service.DATA),
        ),
    )
    answer = ChargeAnswer(
        "s1",
        RequestType.UPDATE,
        3,
        ResultCode.SUCCESS,
        (
            ServiceResult(1, ResultCode.SUCCESS, 60, 600, quota_holding_time=120),
            ServiceResult(2, ResultCode.SUCCESS, 1024, 600, True, "http://topup.example/"),
            ServiceResult(3, ResultCode.SUCCESS, 1, None, True),
            ServiceResult(4, ResultCode.CREDIT_LIMIT_REACHED),
            ServiceResult(9, ResultCode.SUCCESS, 5),  # a rating group the request did not name
        ),
    )
    before = time.time()
    got = answer_json(answer, req)
    stamp = got.pop("invocationTimeStamp")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before)) <= stamp
    assert stamp <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert got == {
        "chargingDataRef": "s1",
        "invocationSequenceNumber": 3,
        "invocationResult": {"resultCode": "SUCCESS", "diameterResultCode": 2001},
        "multipleUnitInformation": [
            {
                "ratingGroup": 1,
                "resultCode": "SUCCESS",
                "diameterResultCode": 2001,
                "grantedUnit": {"time": 60},
                "validityTime": 600,
                "quotaHoldingTime": 120,
            },
            {
                "ratingGroup": 2,
                "resultCode": "SUCCESS",
                "diameterResultCode": 2001,
                "grantedUnit": {"totalVolume": 1024},
                "validityTime": 600,
                "finalUnitIndication": {
                    "finalUnitAction": "REDIRECT",
                    "redirectServer": {
                        "redirectAddressType": "URL",
                        "redirectServerAddress": "http://topup.example/",
                    },
                },
            },
            {
                "ratingGroup": 3,
                "resultCode": "SUCCESS",
                "diameterResultCode": 2001,
                "grantedUnit": {"serviceSpecificUnits": 1},
                "finalUnitIndication": {"finalUnitAction": "TERMINATE"},
            },
            {"ratingGroup": 4, "resultCode": "QUOTA_LIMIT_REACHED", "diameterResultCode": 4012},
            {
                "ratingGroup": 9,
                "resultCode": "SUCCESS",
                "diameterResultCode": 2001,
                "grantedUnit": {"serviceSpecificUnits": 5},
            },
        ],
    }


@pytest.mark.parametrize("code", list(ResultCode))
def test_each_result_has_its_name(code: ResultCode) -> None:
    req = ChargeRequest("s", RequestType.EVENT, 0, "905321234567")
    got = answer_json(ChargeAnswer("s", RequestType.EVENT, 0, code), req)
    assert got["invocationResult"]["diameterResultCode"] == int(code)
    assert got["invocationResult"]["resultCode"].isupper() and got["multipleUnitInformation"] == []
