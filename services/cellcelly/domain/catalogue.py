"""Tariff rules, packages and charging policy, and rating (which rule prices a usage).

The catalogue is immutable: a change at run time builds a new one and swaps it in whole,
so a charging operation always sees one consistent version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellcelly.domain.account import FINISHED_WINDOW
from cellcelly.domain.errors import CatalogueError, DomainError
from cellcelly.domain.limits import MAX_RATING_GROUP, MAX_U32
from cellcelly.domain.money import affordable_units, parse_tl, rated_cost
from cellcelly.domain.units import Service, parse_quantity

HOME_LOCATION = "90"

# digits, then optionally: X per any digit, X{n} or X{m,n} any digits, or '*' (any continuation)
_DESTINATION = re.compile(r"([0-9]*)(?:([Xx]+)|[Xx]\{([0-9]+)(?:,([0-9]+))?\}|(\*))?")


def _all_digits(number: str) -> bool:
    """ASCII digits only (str.isdigit alone takes '²' and Arabic digits); '' has none that are not."""
    return number.isascii() and (number.isdigit() or not number)


@dataclass(frozen=True, slots=True)
class Destination:
    """A called-number pattern: fixed leading digits, then any digits (a count, a range, or any).

    "90" (or "90*") is a bare prefix: every number that starts with 90. "905XXXXXXXXX" (or
    "905X{9}") is 905 and exactly nine more digits, a Turkish mobile number; "X{11,14}" is any
    number of 11 to 14 digits. Plain string tests, no regular expression: rating is on the
    charging hot path.
    """

    prefix: str
    min_len: int
    max_len: int | None  # None: a bare prefix, any number that starts with it
    # more fixed digits win; with as many, a pattern bounded in length beats a bare prefix
    specificity: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "specificity", (len(self.prefix), int(self.max_len is not None)))

    @classmethod
    def parse(cls, text: str) -> Destination:
        m = _DESTINATION.fullmatch(text)
        if m is None or not text or text == "*":
            raise ValueError(f"not a destination pattern: {text!r}")
        prefix, xs, low, high, star = m.groups()
        if star is not None or (xs is None and low is None):
            if not prefix:
                raise ValueError(f"not a destination pattern: {text!r}")
            return cls(prefix, len(prefix), None)
        if xs is not None:
            least = most = len(xs)
        else:
            least = int(low)
            most = least if high is None else int(high)
        if least > most:
            raise ValueError(f"{text!r}: X{{m,n}} needs m <= n")
        return cls(prefix, len(prefix) + least, len(prefix) + most)

    def matches(self, number: str) -> bool:
        return self.matches_known(number, len(number), _all_digits(number))

    def matches_known(self, number: str, length: int, all_digits: bool) -> bool:
        """`matches`, with the number's length and digit-ness worked out once for all rules."""
        if self.max_len is None:
            return number.startswith(self.prefix)
        return all_digits and self.min_len <= length <= self.max_len and number.startswith(self.prefix)

    def __str__(self) -> str:
        if self.max_len is None:
            return self.prefix
        least, most = self.min_len - len(self.prefix), self.max_len - len(self.prefix)
        return f"{self.prefix}X{{{least}}}" if least == most else f"{self.prefix}X{{{least},{most}}}"


_ANY_NUMBER = (0, 0)  # the specificity of a rule for any destination


@dataclass(frozen=True, slots=True)
class TariffRule:
    """A price per block of units for usage that matches service, location, destination, rating group.

    `bucket` names the package allowance this usage may draw from before the wallet pays
    (None: wallet only, e.g. international calls are never taken from package minutes).
    """

    id: str
    service: Service
    price: int  # kuruş per `per` units
    per: int  # units in one priced block (60 s, 1 MiB, 1 message)
    location: str | None = None  # visited country code; None = any
    destinations: tuple[Destination, ...] = ()  # called-number patterns; empty = any
    excepted: tuple[Destination, ...] = ()  # numbers this rule never rates (the seed's (?!90))
    rating_group: int | None = None
    bucket: Service | None = None
    order: int = 0  # position in the file, the last tie-breaker

    def cost(self, units: int) -> int:
        """Rated value of `units` in kuruş (see `money.rated_cost`)."""
        return rated_cost(units, self.price, self.per)

    def affordable(self, already: int, money: int) -> int:
        """Most units beyond `already` whose extra cost fits in `money` kuruş."""
        if self.price == 0:
            raise DomainError("a free rule has no affordable limit")
        return affordable_units(already, money, self.price, self.per)

    def match_score(self, location: str, destination: str, rating_group: int) -> tuple[int, ...] | None:
        """How specifically this rule matches (higher wins), or None when it does not."""
        all_digits = _all_digits(destination)
        return self._score(location, destination, len(destination), all_digits, rating_group)

    def _score(
        self, location: str, destination: str, length: int, all_digits: bool, rating_group: int
    ) -> tuple[int, ...] | None:
        if self.rating_group is not None and self.rating_group != rating_group:
            return None
        if self.location is not None and self.location != location:
            return None
        best = _ANY_NUMBER
        if self.destinations:
            found = None
            for d in self.destinations:
                if d.matches_known(destination, length, all_digits) and (
                    found is None or d.specificity > found
                ):
                    found = d.specificity
            if found is None:
                return None
            best = found
        for d in self.excepted:
            if d.matches_known(destination, length, all_digits):
                return None
        return (int(self.rating_group is not None), int(self.location is not None), *best)


@dataclass(frozen=True, slots=True)
class Package:
    code: str
    name: str
    price: int  # kuruş
    allowances: Mapping[Service, int]  # base units per service
    validity_days: int


@dataclass(frozen=True, slots=True)
class Quota:
    default: int  # units granted when the client asks for none in particular
    maximum: int  # cap on any single grant


@dataclass(frozen=True, slots=True)
class ChargingPolicy:
    validity_time: int = 600  # seconds a grant is valid (Validity-Time)
    grace: int = 30  # extra seconds before an unreported reservation is released
    answer_retention: int = 300  # seconds a finished session's answers stay for retransmissions
    idle_session_timeout: int = 86_400  # a session with nothing reserved is forgotten after this
    low_wallet: int = 1_000  # kuruş: the wallet falling below this is told to the subscriber
    bucket_thresholds: tuple[int, ...] = (80, 100)  # percent of a package allowance used, told once each
    quota_holding_time: int = 0  # seconds (3GPP Quota-Holding-Time); 0: not sent
    # rating groups whose last grant says REDIRECT to `redirect_url` (a top-up page) when the money
    # runs out; the others (and all while no URL is set) say TERMINATE
    redirect_url: str = ""
    redirect_rating_groups: frozenset[int] = frozenset()
    quotas: Mapping[Service, Quota] = field(
        default_factory=lambda: {
            Service.VOICE: Quota(300, 3600),
            Service.SMS: Quota(1, 10),
            Service.DATA: Quota(10 * 1024**2, 100 * 1024**2),
        }
    )

    @property
    def forget_after(self) -> int:
        """Seconds after its end by which a finished session is forgotten: the answer retention,
        plus the `FINISHED_WINDOW` it ended in, forgotten together (`account.Sessions`). Forgotten
        one by one, at each one's retention, the sweep came every few charges of a busy subscriber
        (75 kept sessions at a quarter of a session a second) and doubled a charge's cost."""
        return self.answer_retention + FINISHED_WINDOW


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    tariffs: tuple[TariffRule, ...]
    packages: Mapping[str, Package]
    initial_wallet: int
    policy: ChargingPolicy = ChargingPolicy()
    source: str = ""  # the text it was parsed from, kept for the system of record

    # each service's rules in the order written, so rating looks at a few rules, not all
    _by_service: Mapping[Service, tuple[TariffRule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_service = {
            s: tuple(sorted((r for r in self.tariffs if r.service is s), key=lambda r: r.order))
            for s in Service
        }
        object.__setattr__(self, "_by_service", by_service)

    def rate(self, service: Service, location: str, destination: str, rating_group: int) -> TariffRule | None:
        """The most specific rule for this usage; ties go to the rule written first."""
        best: TariffRule | None = None
        best_score: tuple[int, ...] = ()
        length, all_digits = len(destination), _all_digits(destination)
        for rule in self._by_service[service]:
            score = rule._score(location, destination, length, all_digits, rating_group)
            if score is not None and score > best_score:  # strictly: a tie keeps the earlier rule
                best, best_score = rule, score
        return best


# --- parsing the human-editable file -------------------------------------------------------------


def _service(value: Any, where: str, problems: list[str]) -> Service | None:
    try:
        return Service(value)
    except ValueError:
        problems.append(f"{where}: unknown service {value!r} (voice, sms or data)")
        return None


def _parse_destinations(
    raw: Any, where: str, problems: list[str], any_allowed: bool = True
) -> tuple[Destination, ...] | None:
    """One pattern or a list of them; '*' (any number) gives the empty tuple."""
    items = [raw] if isinstance(raw, str | int) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(d, str | int) for d in items):
        problems.append(f"{where} must be a pattern, a list of patterns, or '*'")
        return None
    if any_allowed and "*" in (str(d) for d in items):
        return ()
    patterns: list[Destination] = []
    for item in items:
        text = str(item)
        try:
            patterns.append(Destination.parse(text))
        except ValueError:
            problems.append(
                f"{where} {text!r}: patterns are digits (a prefix), then X per any digit,"
                " X{n} or X{m,n} any digits, or '*'"
            )
    return tuple(patterns)


def _parse_rule(raw: Any, order: int, problems: list[str]) -> TariffRule | None:
    where = f"tariffs[{order}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        problems.append(f"{where}: needs an id")
        return None
    where = f"tariff {rule_id!r}"
    unknown = set(raw) - {
        "id",
        "service",
        "price",
        "per",
        "location",
        "destination",
        "except",
        "rating_group",
        "bucket",
    }
    if unknown:
        problems.append(f"{where}: unknown fields {sorted(unknown)}")
    service = _service(raw.get("service"), where, problems)
    if service is None:
        return None
    try:
        price = parse_tl(raw.get("price"))
        per = parse_quantity(raw.get("per", 1), service)
    except DomainError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if price < 0:
        problems.append(f"{where}: negative price")
    if per <= 0:
        problems.append(f"{where}: 'per' must be at least one unit")
    location = raw.get("location", "*")
    if not isinstance(location, str | int):
        problems.append(f"{where}: location must be a country code or '*'")
        return None
    location_s = None if str(location) == "*" else str(location)
    destinations = _parse_destinations(raw.get("destination", "*"), f"{where}: destination", problems)
    excepted = _parse_destinations(raw.get("except", ()), f"{where}: except", problems, any_allowed=False)
    if destinations is None or excepted is None:
        return None
    rating_group = raw.get("rating_group")
    if rating_group is not None and (not isinstance(rating_group, int) or rating_group < 0):
        problems.append(f"{where}: rating_group must be a non-negative integer")
    bucket = raw.get("bucket")
    bucket_s = None if bucket in (None, "none") else _service(bucket, where, problems)
    return TariffRule(
        id=rule_id,
        service=service,
        price=price,
        per=per,
        location=location_s,
        destinations=destinations,
        excepted=excepted,
        rating_group=rating_group,
        bucket=bucket_s,
        order=order,
    )


def _parse_package(code: str, raw: Any, problems: list[str]) -> Package | None:
    where = f"package {code!r}"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    unknown = set(raw) - {"name", "price", "voice", "sms", "data", "validity_days"}
    if unknown:
        problems.append(f"{where}: unknown fields {sorted(unknown)}")
    try:
        price = parse_tl(raw.get("price"))
        allowances = {s: parse_quantity(raw.get(s.value, 0), s) for s in Service}
    except DomainError as exc:
        problems.append(f"{where}: {exc}")
        return None
    validity = raw.get("validity_days", 30)
    if not isinstance(validity, int) or validity <= 0:
        problems.append(f"{where}: validity_days must be a positive integer")
        return None
    if price < 0:
        problems.append(f"{where}: negative price")
    return Package(code, str(raw.get("name", code)), price, allowances, validity)


def _parse_policy(raw: Any, problems: list[str]) -> ChargingPolicy:
    if raw is None:
        return ChargingPolicy()
    if not isinstance(raw, Mapping):
        problems.append("charging: must be a mapping")
        return ChargingPolicy()
    defaults = ChargingPolicy()
    values: dict[str, int] = {}
    for name in ("validity_time", "grace", "answer_retention", "idle_session_timeout"):
        value = raw.get(name, getattr(defaults, name))
        if not isinstance(value, int) or value <= 0:
            problems.append(f"charging.{name}: must be a positive number of seconds")
            value = getattr(defaults, name)
        values[name] = value
    low_wallet = defaults.low_wallet
    if "low_wallet" in raw:
        try:
            low_wallet = parse_tl(raw["low_wallet"])
        except DomainError as exc:
            problems.append(f"charging.low_wallet: {exc}")
        if low_wallet < 0:
            problems.append("charging.low_wallet: must not be negative (0: never told)")
    thresholds = raw.get("bucket_thresholds", list(defaults.bucket_thresholds))
    if (
        not isinstance(thresholds, list)
        or not all(isinstance(t, int) and not isinstance(t, bool) and 0 < t <= 100 for t in thresholds)
        or len(set(thresholds)) != len(thresholds)
    ):
        problems.append("charging.bucket_thresholds: must be a list of distinct percents in 1..100")
        thresholds = list(defaults.bucket_thresholds)
    holding = raw.get("quota_holding_time", defaults.quota_holding_time)
    if not isinstance(holding, int) or isinstance(holding, bool) or not 0 <= holding <= MAX_U32:
        problems.append("charging.quota_holding_time: must be a number of seconds (0: not sent)")
        holding = defaults.quota_holding_time
    url, groups = _parse_final_unit(raw.get("final_unit"), problems)
    quotas = dict(defaults.quotas)
    raw_quotas = raw.get("quotas") or {}
    if not isinstance(raw_quotas, Mapping):
        problems.append("charging.quotas: must be a mapping of service to {default, max}")
        raw_quotas = {}
    for name, spec in raw_quotas.items():
        service = _service(name, "charging.quotas", problems)
        if service is None or not isinstance(spec, Mapping):
            continue
        try:
            quota = Quota(parse_quantity(spec["default"], service), parse_quantity(spec["max"], service))
        except (KeyError, DomainError) as exc:
            problems.append(f"charging.quotas.{name}: needs 'default' and 'max' quantities ({exc})")
            continue
        if not 0 < quota.default <= quota.maximum:
            problems.append(f"charging.quotas.{name}: need 0 < default <= max")
        quotas[service] = quota
    return ChargingPolicy(
        quotas=quotas,
        low_wallet=low_wallet,
        bucket_thresholds=tuple(sorted(thresholds)),
        quota_holding_time=holding,
        redirect_url=url,
        redirect_rating_groups=groups,
        **values,
    )


def _parse_final_unit(raw: Any, problems: list[str]) -> tuple[str, frozenset[int]]:
    """charging.final_unit: {redirect_url, redirect_rating_groups}: which rating groups are sent to
    the top-up page (Final-Unit-Action REDIRECT, RFC 4006 §5.6.2) when their money runs out."""
    if raw is None:
        return "", frozenset()
    if not isinstance(raw, Mapping):
        problems.append("charging.final_unit: must be a mapping with redirect_url and redirect_rating_groups")
        return "", frozenset()
    url = raw.get("redirect_url", "")
    groups = raw.get("redirect_rating_groups", [])
    if not isinstance(url, str) or len(url) > 512 or (url and not url.startswith(("http://", "https://"))):
        problems.append("charging.final_unit.redirect_url: must be an http(s) URL of at most 512 characters")
        url = ""
    if not isinstance(groups, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= MAX_RATING_GROUP for g in groups
    ):
        problems.append("charging.final_unit.redirect_rating_groups: must be a list of rating groups")
        groups = []
    if groups and not url:
        problems.append("charging.final_unit: redirect_rating_groups need a redirect_url")
    return url, frozenset(groups)


def parse_catalogue(data: Any, source: str = "") -> Catalogue:
    """Build a catalogue from the loaded file, or raise CatalogueError listing every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise CatalogueError(["the catalogue must be a mapping with version, tariffs and packages"])
    version = data.get("version")
    if not isinstance(version, str | int) or not str(version):
        problems.append("version: required (a string such as '2026-11-25.1')")
    raw_rules = data.get("tariffs")
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append("tariffs: a non-empty list is required")
        raw_rules = []
    rules = [r for i, raw in enumerate(raw_rules) if (r := _parse_rule(raw, i, problems)) is not None]
    seen: dict[str, TariffRule] = {}
    for rule in rules:
        if rule.id in seen:
            problems.append(f"tariff {rule.id!r}: duplicate id")
        seen[rule.id] = rule
    keys: dict[tuple[object, ...], str] = {}
    for rule in rules:
        for dest in rule.destinations or (None,):
            key = (rule.service, rule.location, dest, rule.rating_group, frozenset(rule.excepted))
            if key in keys:
                problems.append(f"tariff {rule.id!r}: matches exactly the same usage as {keys[key]!r}")
            keys[key] = rule.id
    raw_packages = data.get("packages") or {}
    if not isinstance(raw_packages, Mapping):
        problems.append("packages: must be a mapping of code to package")
        raw_packages = {}
    packages = {
        str(code): p for code, raw in raw_packages.items() if (p := _parse_package(str(code), raw, problems))
    }
    try:
        initial_wallet = parse_tl(data.get("initial_wallet", 0))
    except DomainError as exc:
        problems.append(f"initial_wallet: {exc}")
        initial_wallet = 0
    if initial_wallet < 0:
        problems.append("initial_wallet: must not be negative")
    policy = _parse_policy(data.get("charging"), problems)
    if problems:
        raise CatalogueError(problems)
    return Catalogue(str(version), tuple(rules), packages, initial_wallet, policy, source)
