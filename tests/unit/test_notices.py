"""Threshold notices come out of the charging step itself, once per crossing."""

from __future__ import annotations

import pytest

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.domain.charging import ChargeRequest, NotificationEvent, RequestType, ServiceUsage, charge
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.provisioning import open_account, top_up
from cellcelly.domain.units import Service
from cellcelly.notifier.messages import amount_text, render
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit
CAT = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
NOW = 1_800_000_000
M = "5371234567"


def sms_abroad(sid: str) -> ChargeRequest:
    return ChargeRequest(sid, RequestType.EVENT, 0, M, (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),))


def test_bucket_thresholds_are_crossed_once_each() -> None:
    acc = open_account(M, CAT, "ANKARA", NOW).account  # 3000 SMS
    notices: list[NotificationEvent] = []
    sent = 0
    for step in (2000, 399, 1, 1, 598, 1, 5):  # 80% is 2400, 100% is 3000
        units = min(step, 3000 - sent) or 1
        req = ChargeRequest(
            f"s{sent}", RequestType.EVENT, 0, M, (ServiceUsage(1, Service.SMS, units, 0, "905551112233"),)
        )
        out = charge(acc, CAT, req, NOW)
        assert out.account is not None
        acc = out.account
        notices += out.notices
        sent += units
    kinds = [n.kind for n in notices]
    assert kinds == ["bucket-80", "bucket-100"]
    assert notices[0].remaining == 600 and notices[0].total == 3000 and notices[0].package == "ANKARA"
    assert len({n.event_id for n in notices}) == 2


def test_wallet_low_once_per_fall_and_again_after_a_top_up() -> None:
    acc = open_account(M, CAT, None, NOW).account  # 100 TL, no package
    lows = []
    for i in range(24):
        out = charge(acc, CAT, sms_abroad(f"a{i}"), NOW)
        assert out.account is not None
        acc = out.account
        lows += [n for n in out.notices if n.kind == "wallet-low"]
    assert len(lows) == 1 and lows[0].wallet == 800
    acc = top_up(acc, 2000, "v", CAT.policy, NOW).account  # back above the line
    for i in range(6):
        out = charge(acc, CAT, sms_abroad(f"b{i}"), NOW)
        assert out.account is not None
        acc = out.account
        lows += [n for n in out.notices if n.kind == "wallet-low"]
    assert len(lows) == 2 and lows[0].event_id != lows[1].event_id


def test_messages_are_turkish_and_say_amounts_properly() -> None:
    assert amount_text("data", 3 * 1024**3 + 512 * 1024**2) == "3,5 GB"
    assert amount_text("data", 614 * 1024**2) == "614 MB"
    assert amount_text("voice", 550 * 60) == "550 dakika"
    event = NotificationEvent("x", M, "bucket-100", NOW, "data", "RİZE", "b", 0, 10, 0)
    subject, text = render(event, "Çiğdem")
    assert subject == "RİZE paketinizdeki internet hakkınız bitti" and text.startswith("Merhaba Çiğdem,")


def test_the_package_expiry_message_gives_the_end_in_turkish_time() -> None:
    ends = 1_790_000_000  # 2026-09-21 14:13:20 UTC
    event = NotificationEvent("x", M, "package-expiring", NOW, package="RİZE", valid_until=ends)
    subject, text = render(event, "Çiğdem")
    assert subject == "RİZE paketiniz yakında sona eriyor"
    assert "RİZE paketiniz 21.09.2026 17:13 tarihinde sona eriyor." in text


def test_notices_name_the_package_as_subscribers_know_it():
    notice = NotificationEvent(
        "n1", "5321234567", "bucket-100", 0, "data", "DIYARBAKIR", "b1", 0, 7 * 1024**3
    )
    subject, text = render(notice, "Gülşen", "Diyarbakır")
    assert subject == "Diyarbakır paketinizdeki internet hakkınız bitti"
    assert "Merhaba Gülşen," in text and "DIYARBAKIR" not in text
    assert render(notice, "Gülşen")[0].startswith("DIYARBAKIR paketinizdeki")  # no name: the code


# --- thresholds are the catalogue's -------------------------------------------------------------------

OWN = parse_catalogue_text(
    DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    .replace("bucket_thresholds: [80, 100]", "bucket_thresholds: [100, 50, 90]")
    .replace('low_wallet: "10.00"', 'low_wallet: "95.00"')
)


def test_the_catalogues_own_bucket_thresholds_are_told_in_order() -> None:
    assert OWN.policy.bucket_thresholds == (50, 90, 100) and CAT.policy.bucket_thresholds == (80, 100)
    acc = open_account(M, OWN, "ANKARA", NOW).account  # 3000 SMS: 50% is 1500, 90% is 2700
    kinds = []
    for i, units in enumerate((1499, 1, 1199, 1, 300)):
        req = ChargeRequest(
            f"t{i}", RequestType.EVENT, 0, M, (ServiceUsage(1, Service.SMS, units, 0, "905551112233"),)
        )
        out = charge(acc, OWN, req, NOW)
        assert out.account is not None
        acc = out.account
        kinds.append([n.kind for n in out.notices])
    assert kinds == [[], ["bucket-50"], [], ["bucket-90"], ["bucket-100"]]


def test_the_catalogues_low_wallet_line() -> None:
    assert OWN.policy.low_wallet == 9_500 and CAT.policy.low_wallet == 1_000
    acc = open_account(M, OWN, None, NOW).account  # 100 TL; an SMS abroad costs 4 TL
    falls = []
    for i in range(3):
        out = charge(acc, OWN, sms_abroad(f"w{i}"), NOW)
        assert out.account is not None
        acc = out.account
        falls.append([n.wallet for n in out.notices if n.kind == "wallet-low"])
    assert falls == [[], [9_200], []]  # 96 TL, then 92 TL (below 95: told once), then 88 TL
    never = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8").replace('"10.00"', '"0"'))
    acc = open_account(M, never, None, NOW).account
    for i in range(26):  # down to 0 TL: never told
        out = charge(acc, never, sms_abroad(f"n{i}"), NOW)
        assert out.account is not None and not [n for n in out.notices if n.kind == "wallet-low"]
        acc = out.account


@pytest.mark.parametrize(
    ("percent", "said"),
    [(50, "%50'sini"), (90, "%90'ını"), (80, "%80'ini"), (75, "%75'ini"), (33, "%33'ünü"), (60, "%60'ını")],
)
def test_a_threshold_notice_says_its_percent_in_turkish(percent: int, said: str) -> None:
    event = NotificationEvent("x", M, f"bucket-{percent}", NOW, "voice", "ANKARA", "b", 600, 3000, 0)
    subject, text = render(event, "Ali")
    assert subject == f"ANKARA paketinizdeki dakika hakkınızın {said} kullandınız"
    assert "Kalan: 10 dakika." in text


@pytest.mark.parametrize("thresholds", ["[0, 100]", "[80, 80]", "[101]", "80", "[true]", '["80"]'])
def test_bad_thresholds_are_refused_with_the_field_named(thresholds: str) -> None:
    text = DEFAULT_CATALOGUE.read_text(encoding="utf-8").replace("[80, 100]", thresholds)
    with pytest.raises(CatalogueError) as info:
        parse_catalogue_text(text)
    assert any("charging.bucket_thresholds" in p for p in info.value.problems)
