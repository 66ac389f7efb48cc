"""The default catalogue against the seed's tariffs (issue 12 §3), and the destination patterns.

The seed charges data per 1000 MB, rates Turkey-to-Turkey rules for Turkish mobile numbers only
(`905` + 9 digits), abroad rules for `^(?!90)\\d{11,14}$`, and its rating-group-10 rules only in
locations 90 and 49. Where CellCelly differs (allowances only for home calls, SMS and data; a rule
for Turkish landlines), the reason is written beside the rule in the catalogue.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcelly.catalogue_store import parse_catalogue_text
from cellcelly.domain.account import DAY, Account, Bucket, Status
from cellcelly.domain.catalogue import Catalogue, Destination, parse_catalogue
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage, charge
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
MSISDN = "5321234567"
MIB = 1024**2  # the catalogue's MB
GIB = 1024**3  # its GB
TR_MOBILE = "905321234567"
TR_LANDLINE = "903121234567"  # Ankara, 0312 123 45 67
DE_MOBILE = "4915112345678"
US = "12125551234"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))


def rule_id(cat: Catalogue, service: Service, location: str, destination: str, rg: int) -> str | None:
    rule = cat.rate(service, location, destination, rg)
    return None if rule is None else rule.id


# --- data is priced per 1000 MB, as the seed's `usage MB / 1000 x unit price` ----------------------


@pytest.mark.parametrize(
    ("location", "units", "kurus"),
    [
        ("90", 1000 * MIB, 150),  # 1000 MB at home: 1.50 TL
        ("90", GIB, 154),  # 1 GB = 1024 MB: 1.536 TL, rounded up to the kuruş
        ("90", 10 * GIB, 1536),  # 10240 MB: 15.36 TL exactly
        ("90", MIB, 1),  # 0.0015 TL rounds up to 1 kuruş
        ("49", 1000 * MIB, 2000),  # 1000 MB roaming in Germany: 20 TL
        ("49", GIB, 2048),
    ],
)
def test_data_costs_the_seeds_figure(cat: Catalogue, location: str, units: int, kurus: int) -> None:
    rule = cat.rate(Service.DATA, location, "", 1)
    assert rule is not None
    assert rule.cost(units) == kurus


def test_a_100_tl_wallet_buys_about_66_gb_of_home_data(cat: Catalogue) -> None:
    rule = cat.rate(Service.DATA, "90", "", 1)
    assert rule is not None
    units = rule.affordable(0, 10_000)
    assert units // MIB == 66_666  # 100 / 1.50 x 1000 MB
    assert 65 * GIB < units < 66 * GIB


def test_one_gb_of_home_data_from_the_wallet_is_charged_1_54_tl(cat: Catalogue) -> None:
    acc = Account(MSISDN, Status.ACTIVE, 10_000)  # no package: the wallet pays
    begin = ChargeRequest("d", RequestType.INITIAL, 0, MSISDN, (ServiceUsage(1, Service.DATA, 100 * MIB),))
    o = charge(acc, cat, begin, NOW)
    assert o.answer.services[0].result_code is ResultCode.SUCCESS
    # the reservation for the 100 MB grant holds 0.15 TL, not 150 TL
    assert o.account is not None and o.account.held_money == 15
    acc = o.account
    for n in range(1, 11):  # ten updates of 102.4 MB each
        used = GIB // 10 + (1 if n <= GIB % 10 else 0)
        kind = RequestType.TERMINATE if n == 10 else RequestType.UPDATE
        step = ChargeRequest("d", kind, n, MSISDN, (ServiceUsage(1, Service.DATA, None, used),))
        o = charge(acc, cat, step, NOW + n)
        assert o.account is not None
        acc = o.account
    assert acc.wallet == 10_000 - 154
    assert acc.held_money == 0


@settings(max_examples=150, deadline=None)
@given(
    location=st.sampled_from(["90", "49"]),
    wallet=st.integers(0, 5_000),
    uses=st.lists(st.floats(0, 1), min_size=1, max_size=8),
)
def test_a_data_session_costs_the_seed_price_of_its_total_however_split(
    cat: Catalogue, location: str, wallet: int, uses: list[float]
) -> None:
    """Whatever the updates, the wallet pays ceil(total MB / 1000 x price) to the kuruş, and
    never more than it had; a wallet too small gets a smaller grant, not a debt."""
    rule = cat.rate(Service.DATA, location, "", 1)
    assert rule is not None and rule.per == 1000 * MIB
    acc = Account(MSISDN, Status.ACTIVE, wallet)
    begin = ChargeRequest(
        "d", RequestType.INITIAL, 0, MSISDN, (ServiceUsage(1, Service.DATA, 100 * MIB),), location
    )
    o = charge(acc, cat, begin, NOW)
    total = 0
    for n, fraction in enumerate(uses, start=1):
        if o.account is None or o.answer.result_code is not ResultCode.SUCCESS:
            break  # nothing granted (an empty wallet): the session is over
        acc = o.account
        (granted,) = [s.granted for s in o.answer.services]
        used = int(granted * fraction)
        total += used
        kind = RequestType.TERMINATE if n == len(uses) else RequestType.UPDATE
        step = ChargeRequest(
            "d", kind, n, MSISDN, (ServiceUsage(1, Service.DATA, 100 * MIB, used),), location
        )
        o = charge(acc, cat, step, NOW + n)
    if o.account is not None:
        acc = o.account
    assert wallet - acc.wallet == -(-total * rule.price // (1000 * MIB))
    assert acc.wallet >= 0 and acc.held_money >= 0


# --- destinations: Turkish mobile numbers, landlines, abroad ---------------------------------------


@pytest.mark.parametrize(
    ("service", "location", "destination", "expected"),
    [
        (Service.VOICE, "90", TR_MOBILE, "voice-tr-tr"),
        (Service.VOICE, "90", TR_LANDLINE, "voice-tr-fixed"),  # not a mobile call
        (Service.VOICE, "90", "902121234567", "voice-tr-fixed"),  # Istanbul
        (Service.VOICE, "90", DE_MOBILE, "voice-tr-out"),
        (Service.VOICE, "90", US, "voice-tr-out"),
        (Service.VOICE, "90", "9053212345", None),  # too short for a Turkish number
        (Service.VOICE, "90", "9053212345678", None),  # too long
        (Service.VOICE, "90", "5555", None),  # a short code: nothing rates it, it is refused
        (Service.VOICE, "90", "", None),  # no called number: refused, not priced as abroad
        (Service.VOICE, "90", "4930123", None),  # abroad needs 11 to 14 digits
        (Service.VOICE, "90", "491511234567890", None),  # 15 digits
        (Service.VOICE, "49", TR_MOBILE, "voice-out-tr"),
        (Service.VOICE, "49", TR_LANDLINE, "voice-out-tr"),  # roaming: any Turkish number
        (Service.SMS, "90", TR_MOBILE, "sms-tr-tr"),
        (Service.SMS, "90", TR_LANDLINE, None),  # an SMS to a landline is refused, as in the seed
        (Service.SMS, "90", DE_MOBILE, "sms-tr-out"),
        (Service.SMS, "49", TR_MOBILE, "sms-out-tr"),
        (Service.SMS, "49", TR_LANDLINE, None),
    ],
)
def test_destinations_follow_the_seed(
    cat: Catalogue, service: Service, location: str, destination: str, expected: str | None
) -> None:
    assert rule_id(cat, service, location, destination, 1) == expected


def test_a_landline_call_is_not_taken_from_package_minutes(cat: Catalogue) -> None:
    mobile = cat.rate(Service.VOICE, "90", TR_MOBILE, 1)
    landline = cat.rate(Service.VOICE, "90", TR_LANDLINE, 1)
    assert mobile is not None and landline is not None
    assert mobile.bucket is Service.VOICE
    assert landline.bucket is None
    assert landline.price == mobile.price == 95


# --- rating group 10 only in locations 90 and 49 -----------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [("90", "data-rg10-free-tr"), ("49", "data-rg10-free-de"), ("33", None), ("mcc310", None)],
)
def test_rating_group_10_is_free_only_at_home_and_in_germany(
    cat: Catalogue, location: str, expected: str | None
) -> None:
    assert rule_id(cat, Service.DATA, location, "", 10) == expected


# --- package allowances: home calls, SMS and data only -------------------------------------------------


def test_allowances_are_for_home_usage_only(cat: Catalogue) -> None:
    with_bucket = {r.id for r in cat.tariffs if r.bucket is not None}
    assert with_bucket == {"voice-tr-tr", "sms-tr-tr", "data-tr"}
    for rule in cat.tariffs:
        assert rule.bucket in (None, rule.service)


def test_an_sms_abroad_is_paid_from_the_wallet_even_with_package_sms_left(cat: Catalogue) -> None:
    acc = Account(MSISDN, Status.ACTIVE, 10_000)
    acc.buckets["pkg:sms"] = Bucket("pkg:sms", Service.SMS, "ANKARA", 3000, 3000, NOW - DAY, NOW + 30 * DAY)
    sms = ChargeRequest(
        "s", RequestType.EVENT, 0, MSISDN, (ServiceUsage(2, Service.SMS, None, 1, DE_MOBILE),)
    )
    o = charge(acc, cat, sms, NOW)
    assert o.account is not None
    assert o.account.wallet == 10_000 - 400  # README's "Try it": an SMS to Germany costs 4 TL
    assert o.account.buckets["pkg:sms"].remaining == 3000


# --- the pattern language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "matches", "misses"),
    [
        ("90", "90", ["90", "905321234567", "9012"], ["", "9", "8905"]),
        ("90*", "90", ["90", "905321234567"], ["09"]),
        (
            "905XXXXXXXXX",
            "905X{9}",
            [TR_MOBILE],
            [TR_LANDLINE, "90532123456", "9053212345678", "90532123456a"],
        ),
        ("905X{9}", "905X{9}", [TR_MOBILE], [TR_LANDLINE]),
        ("905x{9}", "905X{9}", [TR_MOBILE], [TR_LANDLINE]),
        ("X{11,14}", "X{11,14}", [US, DE_MOBILE, "9" * 14], ["9" * 10, "9" * 15, "1212555123a"]),
        ("90X{0}", "90X{0}", ["90"], ["901"]),
        ("X{0,2}", "X{0,2}", ["", "1", "12"], ["123", "a", "\u00b2"]),
    ],
)
def test_destination_patterns(text: str, canonical: str, matches: list[str], misses: list[str]) -> None:
    pattern = Destination.parse(text)
    assert str(pattern) == canonical
    assert Destination.parse(canonical) == pattern
    for number in matches:
        assert pattern.matches(number), number
    for number in misses:
        assert not pattern.matches(number), number


@pytest.mark.parametrize("text", ["", "90a", "X{2,1}", "X{", "9X0", "X*", "*90", "X{1,2,3}", "+90", "٣"])
def test_bad_destination_patterns_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Destination.parse(text)


def _regex(text: str) -> re.Pattern[str]:
    """The regular expression a pattern stands for, as the seed would have written it."""
    p = Destination.parse(text)
    if p.max_len is None:
        return re.compile(re.escape(p.prefix) + r".*", re.DOTALL)
    least, most = p.min_len - len(p.prefix), p.max_len - len(p.prefix)
    return re.compile(re.escape(p.prefix) + f"[0-9]{{{least},{most}}}")


_patterns = st.one_of(
    st.from_regex(r"[0-9]{0,4}", fullmatch=True).filter(bool),
    st.from_regex(r"[0-9]{0,4}X{1,6}", fullmatch=True),
    st.tuples(st.from_regex(r"[0-9]{0,4}", fullmatch=True), st.integers(0, 8), st.integers(0, 8)).map(
        lambda t: f"{t[0]}X{{{min(t[1], t[2])},{max(t[1], t[2])}}}"
    ),
)
_numbers = st.one_of(
    st.from_regex(r"[0-9]{0,16}", fullmatch=True), st.text(alphabet="0159a+ \u00b2\u0663", max_size=14)
)


@given(_patterns, _numbers)
def test_a_pattern_matches_exactly_what_its_regex_matches(text: str, number: str) -> None:
    assert Destination.parse(text).matches(number) == bool(_regex(text).fullmatch(number))


# --- rules with exceptions and bounded patterns in a catalogue --------------------------------------------


def test_except_takes_numbers_out_of_a_rule() -> None:
    cat = parse_catalogue(
        {
            "version": "t",
            "tariffs": [
                {"id": "abroad", "service": "sms", "price": "4", "destination": "X{11,14}", "except": "90"},
                {"id": "tr", "service": "sms", "price": "1", "destination": "905X{9}"},
            ],
        }
    )
    assert rule_id(cat, Service.SMS, "90", DE_MOBILE, 2) == "abroad"
    assert rule_id(cat, Service.SMS, "90", TR_MOBILE, 2) == "tr"
    assert rule_id(cat, Service.SMS, "90", TR_LANDLINE, 2) is None  # excepted, and no other rule


def test_a_bounded_pattern_beats_a_bare_prefix_of_the_same_digits() -> None:
    cat = parse_catalogue(
        {
            "version": "t",
            "tariffs": [
                {"id": "prefix", "service": "voice", "price": "1", "destination": "90"},
                {"id": "national", "service": "voice", "price": "2", "destination": "90X{10}"},
                {"id": "mobile", "service": "voice", "price": "3", "destination": "905X{9}"},
            ],
        }
    )
    assert rule_id(cat, Service.VOICE, "90", TR_MOBILE, 1) == "mobile"
    assert rule_id(cat, Service.VOICE, "90", TR_LANDLINE, 1) == "national"
    assert rule_id(cat, Service.VOICE, "90", "904441234", 1) == "prefix"


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ({"destination": "90a"}, "destination"),
        ({"destination": "X{3,2}"}, "destination"),
        ({"except": "9X0"}, "except"),
        ({"except": {"a": 1}}, "except"),
        ({"except": "*"}, "except"),
    ],
)
def test_bad_patterns_in_a_catalogue_are_listed(rule: dict[str, object], needle: str) -> None:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue({"version": "t", "tariffs": [{"id": "r", "service": "voice", "price": "1", **rule}]})
    assert any(needle in p for p in info.value.problems), info.value.problems


def test_same_patterns_with_other_exceptions_are_not_duplicates() -> None:
    parse_catalogue(
        {
            "version": "t",
            "tariffs": [
                {"id": "a", "service": "sms", "price": "1", "destination": "X{11,14}"},
                {"id": "b", "service": "sms", "price": "2", "destination": "X{11,14}", "except": "90"},
            ],
        }
    )
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(
            {
                "version": "t",
                "tariffs": [
                    {"id": "a", "service": "sms", "price": "1", "destination": "905XXXXXXXXX"},
                    {"id": "b", "service": "sms", "price": "2", "destination": "905X{9}"},
                ],
            }
        )
    assert info.value.problems == ["tariff 'b': matches exactly the same usage as 'a'"]
