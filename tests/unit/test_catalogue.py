"""The seeded catalogue, rating, validation of broken catalogues, and the catalogue holder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cellcelly.catalogue_store import CatalogueHolder, parse_catalogue_text
from cellcelly.domain.catalogue import Catalogue, parse_catalogue
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE

pytestmark = pytest.mark.unit

MIN = 60
GIB = 1024**3
GB1000 = 1000 * 1024**2  # data is priced per 1000 MB (binary MB), as the seed


@pytest.fixture(scope="module")
def text() -> str:
    return DEFAULT_CATALOGUE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cat(text: str) -> Catalogue:
    return parse_catalogue_text(text)


@pytest.fixture()
def raw(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return copy.deepcopy(data)


# --- the seeded catalogue -------------------------------------------------------------------------


def test_default_catalogue_parses(cat: Catalogue, text: str) -> None:
    assert cat.version == "2026-12-02.1"
    assert cat.source == text
    assert cat.initial_wallet == 10_000
    assert len(cat.tariffs) == 11
    assert [r.order for r in cat.tariffs] == list(range(11))


@pytest.mark.parametrize(
    ("rule_id", "service", "price", "per", "location", "destinations", "rating_group", "bucket"),
    [
        ("voice-tr-tr", Service.VOICE, 95, 60, "90", ("905X{9}",), None, Service.VOICE),
        ("voice-tr-fixed", Service.VOICE, 95, 60, "90", ("90X{10}",), None, None),
        ("voice-tr-out", Service.VOICE, 250, 60, "90", ("X{11,14}", "except 90"), None, None),
        ("voice-out-tr", Service.VOICE, 1000, 60, "49", ("90X{10}",), None, None),
        ("sms-tr-tr", Service.SMS, 100, 1, "90", ("905X{9}",), None, Service.SMS),
        ("sms-tr-out", Service.SMS, 400, 1, "90", ("X{11,14}", "except 90"), None, None),
        ("sms-out-tr", Service.SMS, 800, 1, "49", ("905X{9}",), None, None),
        ("data-tr", Service.DATA, 150, GB1000, "90", (), None, Service.DATA),
        ("data-abroad", Service.DATA, 2000, GB1000, "49", (), None, None),
        ("data-rg10-free-tr", Service.DATA, 0, GB1000, "90", (), 10, None),
        ("data-rg10-free-de", Service.DATA, 0, GB1000, "49", (), 10, None),
    ],
)
def test_seeded_tariffs(
    cat: Catalogue,
    rule_id: str,
    service: Service,
    price: int,
    per: int,
    location: str | None,
    destinations: tuple[str, ...],
    rating_group: int | None,
    bucket: Service | None,
) -> None:
    rule = {r.id: r for r in cat.tariffs}[rule_id]
    assert (rule.service, rule.price, rule.per) == (service, price, per)
    patterns = tuple(str(d) for d in rule.destinations) + tuple(f"except {d}" for d in rule.excepted)
    assert (rule.location, patterns, rule.rating_group, rule.bucket) == (
        location,
        destinations,
        rating_group,
        bucket,
    )


@pytest.mark.parametrize(
    ("code", "name", "price", "voice", "data", "sms", "days"),
    [
        ("ANKARA", "Ankara", 5_000, 3000 * MIN, 3 * GIB, 3000, 30),
        ("BURSA", "Bursa", 6_500, 5000 * MIN, 5 * GIB, 5000, 30),
        ("DIYARBAKIR", "Diyarbakır", 8_000, 7000 * MIN, 7 * GIB, 7000, 30),
        ("RIZE", "Rize", 9_500, 10_000 * MIN, 10 * GIB, 10_000, 30),
        ("CANAKKALE", "Çanakkale", 12_000, 1700 * MIN, 17 * GIB, 700, 17),
        ("ESKISEHIR", "Eskişehir", 14_000, 1000 * MIN, 20 * GIB, 5000, 30),
    ],
)
def test_seeded_packages(
    cat: Catalogue, code: str, name: str, price: int, voice: int, data: int, sms: int, days: int
) -> None:
    package = cat.packages[code]
    assert package.code == code
    assert package.name == name
    assert package.price == price
    assert dict(package.allowances) == {Service.VOICE: voice, Service.DATA: data, Service.SMS: sms}
    assert package.validity_days == days


def test_ankara_in_base_units(cat: Catalogue) -> None:
    ankara = cat.packages["ANKARA"]
    assert ankara.price == 5000
    assert ankara.allowances[Service.VOICE] == 180_000
    assert ankara.allowances[Service.DATA] == 3_221_225_472
    assert ankara.allowances[Service.SMS] == 3000
    assert set(cat.packages) == {"ANKARA", "BURSA", "DIYARBAKIR", "RIZE", "CANAKKALE", "ESKISEHIR"}


def test_seeded_policy(cat: Catalogue) -> None:
    p = cat.policy
    assert (p.validity_time, p.grace, p.answer_retention, p.idle_session_timeout) == (600, 30, 300, 86_400)
    assert (p.quotas[Service.VOICE].default, p.quotas[Service.VOICE].maximum) == (300, 3600)
    assert (p.quotas[Service.SMS].default, p.quotas[Service.SMS].maximum) == (1, 10)
    assert (p.quotas[Service.DATA].default, p.quotas[Service.DATA].maximum) == (10 * 1024**2, 100 * 1024**2)


# --- rating -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "location", "destination", "rating_group", "expected"),
    [
        (Service.VOICE, "90", "905321234567", 1, "voice-tr-tr"),  # home to Turkey
        (Service.VOICE, "90", "4915112345678", 1, "voice-tr-out"),  # home to abroad
        (Service.VOICE, "90", "12125551234", 1, "voice-tr-out"),
        (Service.VOICE, "90", "903121234567", 1, "voice-tr-fixed"),  # home to a Turkish landline
        (Service.VOICE, "49", "905321234567", 1, "voice-out-tr"),  # roaming in Germany to Turkey
        (Service.VOICE, "49", "4915112345678", 1, None),  # roaming, local call: no rule
        (Service.VOICE, "33", "905321234567", 1, None),  # unknown location
        (Service.SMS, "90", "905321234567", 2, "sms-tr-tr"),
        (Service.SMS, "90", "4915112345678", 2, "sms-tr-out"),
        (Service.SMS, "49", "905321234567", 2, "sms-out-tr"),
        (Service.SMS, "33", "905321234567", 2, None),
        (Service.DATA, "90", "", 1, "data-tr"),  # data at home
        (Service.DATA, "49", "", 1, "data-abroad"),  # data abroad
        (Service.DATA, "33", "", 1, None),
        (Service.DATA, "90", "", 10, "data-rg10-free-tr"),  # RG 10 is free at home and in Germany
        (Service.DATA, "49", "", 10, "data-rg10-free-de"),
        (Service.DATA, "33", "", 10, None),  # and not rated elsewhere, as in the seed
        (Service.VOICE, "90", "905321234567", 10, "voice-tr-tr"),  # RG 10 is a data rule only
    ],
)
def test_rating_picks_the_most_specific_rule(
    cat: Catalogue,
    service: Service,
    location: str,
    destination: str,
    rating_group: int,
    expected: str | None,
) -> None:
    rule = cat.rate(service, location, destination, rating_group)
    assert (rule.id if rule is not None else None) == expected


def _with_tariffs(tariffs: list[dict[str, Any]]) -> Catalogue:
    return parse_catalogue({"version": "t", "tariffs": tariffs})


def test_rating_longest_prefix_then_first_written() -> None:
    cat = _with_tariffs(
        [
            {"id": "any", "service": "voice", "price": "1"},
            {"id": "tr", "service": "voice", "price": "2", "destination": "90"},
            {"id": "tr-mobile", "service": "voice", "price": "3", "destination": ["905", "9053*"]},
            {"id": "tr-mobile-home", "service": "voice", "price": "4", "destination": "905", "location": 90},
            {"id": "rg7", "service": "voice", "price": "5", "rating_group": 7},
        ]
    )
    assert cat.rate(Service.VOICE, "90", "3312345", 1).id == "any"  # type: ignore[union-attr]
    assert cat.rate(Service.VOICE, "49", "902121234567", 1).id == "tr"  # type: ignore[union-attr]
    assert cat.rate(Service.VOICE, "49", "905321234567", 1).id == "tr-mobile"  # type: ignore[union-attr]
    # location beats a longer prefix
    assert cat.rate(Service.VOICE, "90", "905321234567", 1).id == "tr-mobile-home"  # type: ignore[union-attr]
    # a rating group beats everything
    assert cat.rate(Service.VOICE, "90", "905321234567", 7).id == "rg7"  # type: ignore[union-attr]
    assert cat.rate(Service.DATA, "90", "", 1) is None


def test_rules_that_could_only_tie_are_refused_as_duplicates() -> None:
    # equally specific matches need the same location, rating group and prefix: a duplicate
    with pytest.raises(CatalogueError) as info:
        _with_tariffs(
            [
                {"id": "a", "service": "sms", "price": "1", "location": "90", "destination": ["90"]},
                {"id": "b", "service": "sms", "price": "2", "location": "90", "destination": ["8", "90*"]},
            ]
        )
    assert info.value.problems == ["tariff 'b': matches exactly the same usage as 'a'"]


# --- broken catalogues ------------------------------------------------------------------------------


def _problems(data: Any) -> list[str]:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(data)
    assert info.value.problems, "a CatalogueError must list its problems"
    return info.value.problems


@pytest.mark.parametrize("data", [None, [], "version: 1", 42])
def test_not_a_mapping_is_refused(data: Any) -> None:
    assert len(_problems(data)) == 1


def test_every_problem_is_listed_at_once(raw: dict[str, Any]) -> None:
    raw["version"] = ""
    raw["tariffs"][0]["service"] = "fax"  # unknown service
    raw["tariffs"][1]["price"] = "2.505"  # three decimals
    raw["tariffs"][2]["per"] = "3 GB"  # a data unit on a voice rule
    raw["tariffs"][3]["colour"] = "red"  # unknown field
    raw["tariffs"][4]["id"] = raw["tariffs"][5]["id"]  # duplicate id
    raw["tariffs"][6]["price"] = "-1.00"  # negative price
    raw["tariffs"][7]["per"] = 0  # no units per block
    raw["packages"]["BURSA"]["voice"] = "5 GB"
    raw["packages"]["RIZE"]["validity_days"] = 0
    raw["charging"]["grace"] = -3
    raw["charging"]["quotas"]["voice"] = {"default": "10 min", "max": "1 min"}
    raw["initial_wallet"] = "lots"
    problems = _problems(raw)
    joined = "\n".join(problems)
    for needle in [
        "version",
        "unknown service 'fax'",
        "voice-tr-out",
        "voice-out-tr",
        "unknown fields ['colour']",
        "duplicate id",
        "negative price",
        "'per' must be at least one unit",
        "package 'BURSA'",
        "package 'RIZE'",
        "charging.grace",
        "charging.quotas.voice",
        "initial_wallet",
    ]:
        assert needle in joined, f"{needle!r} missing from {problems}"
    assert len(problems) >= 13


def test_the_error_message_names_every_problem(raw: dict[str, Any]) -> None:
    raw["tariffs"][0]["price"] = "x"
    raw["packages"]["ANKARA"]["sms"] = "3 min"
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(raw)
    assert len(info.value.problems) == 2
    for problem in info.value.problems:
        assert problem in str(info.value)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.pop("tariffs"), "tariffs"),
        (lambda d: d.update(tariffs=[]), "tariffs"),
        (lambda d: d["tariffs"].append("not a rule"), "must be a mapping"),
        (lambda d: d["tariffs"].append({"service": "voice", "price": "1"}), "needs an id"),
        (lambda d: d["tariffs"][0].update(destination=["90a"]), "patterns are digits"),
        (lambda d: d["tariffs"][0].update(destination={"a": 1}), "destination must be"),
        (lambda d: d["tariffs"][0].update(location=["90"]), "location"),
        (lambda d: d["tariffs"][0].update(rating_group=-1), "rating_group"),
        (lambda d: d["tariffs"][0].update(bucket="fax"), "unknown service"),
        (lambda d: d["tariffs"][0].update(price="0.955"), "2 decimals"),
        (lambda d: d["tariffs"][0].update(price=0.955), "2 decimals"),  # unquoted YAML, 3 decimals
        # same service, location, destination and rating group as voice-tr-tr
        (lambda d: d["tariffs"].append(dict(d["tariffs"][0], id="copy")), "exactly the same usage"),
        (lambda d: d.update(packages=["ANKARA"]), "packages"),
        (lambda d: d["packages"].update(X="cheap"), "package 'X'"),
        (lambda d: d["packages"]["ANKARA"].update(price="-1"), "negative price"),
        (lambda d: d["packages"]["ANKARA"].update(data="3 min"), "package 'ANKARA'"),
        (lambda d: d["packages"]["ANKARA"].update(bonus=1), "unknown fields"),
        (lambda d: d.update(charging=[1]), "charging"),
        (lambda d: d["charging"].update(validity_time=0), "charging.validity_time"),
        (lambda d: d["charging"]["quotas"].update(sms={"default": "1 msg"}), "charging.quotas.sms"),
        (lambda d: d["charging"]["quotas"].update(sms={"default": "0 msg", "max": "1 msg"}), "quotas.sms"),
    ],
)
def test_single_problems_are_refused(raw: dict[str, Any], change: Any, needle: str) -> None:
    change(raw)
    problems = _problems(raw)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["tariffs"][0].update(per=0.5), id="per-float"),
        pytest.param(lambda d: d["tariffs"][0].update(per=None), id="per-null"),
        pytest.param(lambda d: d["packages"]["ANKARA"].update(voice=1.5), id="allowance-float"),
        pytest.param(lambda d: d["charging"]["quotas"].update(data={"default": 1.5, "max": 2}), id="quota"),
    ],
)
def test_non_text_quantities_are_catalogue_errors(raw: dict[str, Any], change: Any) -> None:
    # BUG (units.parse_quantity): a float/None quantity raises TypeError, which parse_catalogue does
    # not catch, so the file is not refused with a CatalogueError listing the problem.
    change(raw)
    _problems(raw)


@pytest.mark.parametrize(
    "quotas", [pytest.param([1, 2], id="list"), pytest.param("10 MB", id="text")], ids=str
)
def test_quotas_that_are_not_a_mapping_are_catalogue_errors(raw: dict[str, Any], quotas: Any) -> None:
    # BUG (catalogue._parse_policy): `(raw.get("quotas") or {}).items()` raises AttributeError
    raw["charging"]["quotas"] = quotas
    assert any("quotas" in p for p in _problems(raw))


def test_negative_initial_wallet_is_refused(raw: dict[str, Any]) -> None:
    # BUG (catalogue.parse_catalogue): a negative initial wallet is accepted, so every new
    # account opens below zero (DESIGN invariant 2: no balance goes below zero).
    raw["initial_wallet"] = "-5.00"
    assert any("initial_wallet" in p for p in _problems(raw))


def test_problems_are_reported_for_yaml_errors() -> None:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue_text("version: [unclosed\n")
    assert "YAML" in info.value.problems[0]


# --- the holder -------------------------------------------------------------------------------------


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_holder_replace_keeps_the_old_catalogue_on_error(
    cat: Catalogue, text: str, raw: dict[str, Any]
) -> None:
    holder = CatalogueHolder(cat)
    raw["version"] = "2026-12-03.1"
    raw["tariffs"][0]["price"] = "bad"
    raw["packages"]["ANKARA"]["price"] = "-1"
    with pytest.raises(CatalogueError) as info:
        holder.replace(_dump(raw))
    assert len(info.value.problems) == 2
    assert holder.current is cat
    with pytest.raises(CatalogueError):
        holder.replace("version: [unclosed\n")
    assert holder.current is cat


def test_holder_replace_swaps_in_a_new_version(cat: Catalogue, raw: dict[str, Any]) -> None:
    holder = CatalogueHolder(cat)
    raw["version"] = "2026-12-03.1"
    raw["tariffs"][0]["price"] = "0.99"
    new = holder.replace(_dump(raw))
    assert holder.current is new
    assert new.version == "2026-12-03.1"
    assert new.rate(Service.VOICE, "90", "905321234567", 1).price == 99  # type: ignore[union-attr]
    assert cat.rate(Service.VOICE, "90", "905321234567", 1).price == 95  # type: ignore[union-attr]


def test_holder_refuses_the_same_version_with_other_content(
    cat: Catalogue, text: str, raw: dict[str, Any]
) -> None:
    holder = CatalogueHolder(cat)
    raw["tariffs"][0]["price"] = "0.99"  # version unchanged
    with pytest.raises(CatalogueError) as info:
        holder.replace(_dump(raw))
    assert "bump the version" in info.value.problems[0]
    assert holder.current is cat
    # the very same text again is harmless
    again = holder.replace(text)
    assert again.version == cat.version
    assert again.source == cat.source
    assert holder.current.rate(Service.VOICE, "90", "905321234567", 1).price == 95  # type: ignore[union-attr]


def test_holder_from_file_and_reload(tmp_path: Path, text: str, raw: dict[str, Any]) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    holder = CatalogueHolder.from_file(path)
    assert holder.current.version == "2026-12-02.1"
    path.write_text("tariffs: 3\n", encoding="utf-8")
    with pytest.raises(CatalogueError):
        holder.reload()
    assert holder.current.version == "2026-12-02.1"
    raw["version"] = "2026-12-03.1"
    path.write_text(_dump(raw), encoding="utf-8")
    assert holder.reload().version == "2026-12-03.1"
    assert holder.current.version == "2026-12-03.1"
    with pytest.raises(CatalogueError):
        CatalogueHolder.from_file(tmp_path / "missing.yaml")
    with pytest.raises(CatalogueError):
        CatalogueHolder(holder.current).reload()
