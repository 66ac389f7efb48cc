"""The usage page and the dashboard's low-wallet line in real Chromium against the real stack: every
row names its destination and its price (package, wallet or both), history comes 20 rows at a time
with "show more" until the MW says there is no next page; the dashboard warns below the line the
balance answer carries (the catalogue's), not a constant of its own."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from webui_helpers import (
    Stack,
    Subscriber,
    fresh_subscriber,
    get_json,
    login_ui,
    money_tr,
    register_api,
    token,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

PAGE = 20
SMS_PACKAGE = 3000  # ANKARA's SMS allowance (catalogue/default.yaml)
# every kind of price is on page one (the 20 newest of the plan below): package, both, free, wallet
PAGE_ONE_PRICES = {
    "tr": {"Paketten", "Paketten 2.992 SMS + 2,00 TL", "Ücretsiz", "Cüzdandan 4,00 TL", "Cüzdandan 1,00 TL"},
    "en": {
        "From package",
        "2,992 SMS from package + 2.00 TL",
        "Free",
        "4.00 TL from wallet",
        "1.00 TL from wallet",
    },
}


@dataclass(frozen=True)
class Event:
    """One charge through the OCS's charging API and what its row must show."""

    session: str
    service: str
    units: int
    destination: str
    rating_group: int = 1
    package_units: int = 0
    wallet_kurus: int = 0


def _charge(stack: Stack, sub: Subscriber, event: Event) -> None:
    field = {"voice": "time", "sms": "serviceSpecificUnits", "data": "totalVolume"}[event.service]
    unit: dict[str, Any] = {
        "ratingGroup": event.rating_group,
        "serviceType": event.service,
        "requestedUnit": {field: event.units},
    }
    if event.destination:
        unit["destination"] = event.destination
    r = httpx.post(
        f"{stack.ocs_url}/nchf-convergedcharging/v3/chargingdata",
        json={
            "subscriberIdentifier": f"msisdn-{sub.msisdn}",
            "invocationSequenceNumber": 0,
            "sessionId": event.session,
            "multipleUnitUsage": [unit],
            "oneTimeEvent": True,
            "oneTimeEventType": "IEC",
        },
        headers={"Authorization": f"Bearer {(stack.log_path.parent / 'ocs-api-key').read_text().strip()}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def _plan(msisdn: str) -> list[Event]:
    """25 events, oldest first: a data and a call from the package, 8 SMS from it, one SMS that
    takes the rest of the SMS allowance and 2 from the wallet, free data (rating group 10), then
    SMS abroad (4 TL) and at home (1 TL, the allowance gone) in turn, all from the wallet."""
    tag = f"up-{msisdn}"
    events = [
        Event(f"{tag}-00", "data", 1048576, "", package_units=1048576),
        Event(f"{tag}-01", "voice", 90, "905321234567", package_units=90),
    ]
    events += [Event(f"{tag}-{i:02d}", "sms", 1, f"90555{i:07d}", 2, package_units=1) for i in range(2, 10)]
    left = SMS_PACKAGE - 8
    events.append(
        Event(f"{tag}-10", "sms", left + 2, "905559876543", 2, package_units=left, wallet_kurus=200)
    )
    events.append(Event(f"{tag}-11", "data", 1048576, "", rating_group=10))
    for i in range(12, 25):
        if i % 2:
            events.append(Event(f"{tag}-{i:02d}", "sms", 1, f"90555{i:07d}", 2, wallet_kurus=100))
        else:
            events.append(Event(f"{tag}-{i:02d}", "sms", 1, f"49151{i:08d}", 2, wallet_kurus=400))
    return events


def grouped_en(n: int) -> str:
    return f"{n:,}"


def money_en(kurus: int) -> str:
    return f"{grouped_en(kurus // 100)}.{kurus % 100:02d} TL"


def destination_text(number: str) -> str:
    """The two kinds this history has, spelled out: Turkish 3-3-2-2, German mobile in threes."""
    if not number:
        return "—"
    if number.startswith("90"):
        return f"+90 {number[2:5]} {number[5:8]} {number[8:10]} {number[10:]}"
    assert number.startswith("49") and len(number) == 13, number
    return f"+49 {number[2:5]} {number[5:8]} {number[8:11]} {number[11:]}"


def price_text(event: Event, lang: str) -> str:
    money, grouped = (
        (money_tr, lambda n: f"{n:,}".replace(",", ".")) if lang == "tr" else (money_en, grouped_en)
    )
    if event.package_units and event.wallet_kurus:
        assert event.service == "sms"
        units = f"{grouped(event.package_units)} SMS"
        if lang == "tr":
            return f"Paketten {units} + {money(event.wallet_kurus)}"
        return f"{units} from package + {money(event.wallet_kurus)}"
    if event.package_units:
        return "Paketten" if lang == "tr" else "From package"
    if event.wallet_kurus:
        return (
            f"Cüzdandan {money(event.wallet_kurus)}"
            if lang == "tr"
            else f"{money(event.wallet_kurus)} from wallet"
        )
    return "Ücretsiz" if lang == "tr" else "Free"


@dataclass
class History:
    sub: Subscriber
    events: dict[str, Event]  # by session id, which begins the event id
    pages: list[list[dict[str, Any]]]  # the MW's own pages of 20, newest first
    next: str  # the first page's cursor

    def event(self, event_id: str) -> Event:
        return self.events[event_id.split("#", 1)[0]]


@pytest.fixture(scope="module")
def history(stack: Stack) -> History:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    plan = _plan(sub.msisdn)
    for event in plan:
        _charge(stack, sub, event)
    access = token(stack.api, sub.msisdn, sub.password)
    items: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(items) < len(plan) and time.monotonic() < deadline:  # records follow charging by seconds
        items = get_json(stack.api, "/api/v1/me/usage?limit=100", access)["items"]
        time.sleep(0.3)
    assert len(items) == len(plan) == 25, items
    events = {e.session: e for e in plan}
    for item in items:  # the record says what the plan expects: else the test, not the page, is wrong
        e = events[item["eventId"].split("#", 1)[0]]
        assert (item["packageUnits"], item["chargedKurus"], item["destination"]) == (
            e.package_units,
            e.wallet_kurus,
            e.destination,
        ), item
    first = get_json(stack.api, f"/api/v1/me/usage?limit={PAGE}", access)
    assert len(first["items"]) == PAGE and first["next"], first
    second = get_json(stack.api, f"/api/v1/me/usage?limit={PAGE}&before={first['next']}", access)
    assert len(second["items"]) == 5 and second["next"] is None, second
    assert [i["eventId"] for i in first["items"] + second["items"]] == [i["eventId"] for i in items]
    return History(sub, events, [first["items"], second["items"]], first["next"])


def _rows(page: Any) -> list[dict[str, str]]:
    return list(
        page.locator("[data-testid=usage-table] tbody tr").evaluate_all(
            """rows => rows.map(r => ({
                 event: r.dataset.event,
                 destination: r.querySelector('[data-testid=usage-destination]').innerText,
                 price: r.querySelector('[data-testid=usage-price]').innerText,
                 text: r.innerText}))"""
        )
    )


def _assert_rows(
    rows: list[dict[str, str]], items: list[dict[str, Any]], history: History, lang: str
) -> None:
    assert [r["event"] for r in rows] == [i["eventId"] for i in items]  # the MW's order, newest first
    for row in rows:
        event = history.event(row["event"])
        assert (row["destination"], row["price"]) == (
            destination_text(event.destination),
            price_text(event, lang),
        )


@pytest.mark.parametrize(("lang", "device"), [("tr", "desktop"), ("en", "phone")])
def test_the_history_shows_destination_and_price_and_pages_by_twenty(
    stack: Stack, new_page: Any, screenshot: Any, history: History, lang: str, device: str
) -> None:
    page = new_page(device)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/me/usage" in r.url else None)
    if lang == "en":
        page.goto("/")
        page.click("#lang")
        page.wait_for_selector("html[lang=en]")
    login_ui(page, history.sub.msisdn, history.sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    page.click("nav a[href='#/usage']")
    page.wait_for_selector(".usage-body[data-rows='20']")
    more = page.locator("[data-testid=usage-more]")

    rows = _rows(page)
    assert len(rows) == PAGE
    _assert_rows(rows, history.pages[0], history, lang)
    assert {r["price"] for r in rows} == PAGE_ONE_PRICES[lang]
    assert more.is_visible() and more.inner_text() == ("Daha fazla göster" if lang == "tr" else "Show more")
    screenshot(page, f"usage-first-page-{lang}", device)

    more.click()
    page.wait_for_selector(".usage-body[data-rows='25']")
    rows = _rows(page)
    _assert_rows(rows, history.pages[0] + history.pages[1], history, lang)
    assert more.is_hidden()  # the MW said there is no next page
    assert page.evaluate("document.activeElement.classList.contains('table-wrap')")  # focus not lost
    last = rows[-1]  # the oldest: 1 MB of data from the package, no number
    assert (last["destination"], last["price"]) == ("—", "Paketten" if lang == "tr" else "From package")
    assert ("1 MB" in last["text"]) and (("İnternet" if lang == "tr" else "Data") in last["text"])
    screenshot(page, f"usage-all-{lang}", device)

    # the first page asked for 20 with no cursor, the second with the first's `next`
    queries = [parse_qs(urlsplit(url).query) for url in asked]
    assert queries == [{"limit": ["20"]}, {"limit": ["20"], "before": [history.next]}], asked

    # a language switch re-renders every row, the ones "show more" brought too
    page.click("#lang")
    other = "en" if lang == "tr" else "tr"
    page.wait_for_selector(f"html[lang={other}]")
    _assert_rows(_rows(page), history.pages[0] + history.pages[1], history, other)
    assert more.is_hidden()


def test_destinations_read_as_numbers(stack: Stack, new_page: Any) -> None:
    page = new_page("desktop")
    page.goto("/")
    shown = page.evaluate(
        "import('/js/views/usage.js').then(m => ["
        "'905551112233', '903121234567', '4915112345678', '12025550123', '447911123456', '3312345',"
        " 'internet', ''].map(m.destination))"
    )
    assert shown == [
        "+90 555 111 22 33",
        "+90 312 123 45 67",
        "+49 151 123 456 78",
        "+1 202 555 0123",  # a lone last digit joins the group before it
        "+44 791 112 3456",
        "3312345",  # too short for an international number: as recorded
        "internet",
        "—",
    ]


@contextmanager
def low_wallet_line(stack: Stack, tl: str) -> Iterator[None]:
    """The catalogue in force with another low-wallet line (a new version through the admin API),
    and afterwards the old content again under a further version: other tests see 10 TL."""
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    source = str(stack.api.get("/api/v1/admin/catalogue", headers=admin).json()["source"])
    assert re.search(r'(?m)^  low_wallet: "10\.00"', source), "the seed's line moved: update this test"

    def put(text: str) -> None:
        version = f'version: "usage-test-{uuid.uuid4().hex[:8]}"'
        body = re.sub(r"(?m)^version: .*$", version, text, count=1)
        r = stack.api.put(
            "/api/v1/admin/catalogue",
            content=body.encode(),
            headers={**admin, "Content-Type": "application/yaml"},
        )
        assert r.status_code == 200, r.text

    put(source.replace('low_wallet: "10.00"', f'low_wallet: "{tl}"'))
    try:
        yield
    finally:
        put(source)


def _wallet(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => {
              const card = document.querySelector('[data-testid=wallet]');
              const warning = card.querySelector('[data-testid=wallet-low]');
              return {kurus: Number(card.dataset.kurus), low: card.dataset.low,
                      warning: warning ? warning.innerText : null};
            }"""
        )
    )


def test_the_dashboard_warns_below_the_line_the_balance_answer_carries(stack: Stack, new_page: Any) -> None:
    sub = fresh_subscriber()
    register_api(stack.api, sub)
    access = token(stack.api, sub.msisdn, sub.password)
    page = new_page("desktop")
    login_ui(page, sub.msisdn, sub.password)
    page.wait_for_selector(".dash-body[data-loaded]")
    shown = _wallet(page)
    assert shown["kurus"] == 10000 and (shown["low"], shown["warning"]) == ("false", None)  # 100 TL ≥ 10 TL

    with low_wallet_line(stack, "150.00"):
        assert get_json(stack.api, "/api/v1/me/balance", access)["lowWallet"] == {
            "kurus": 15000,
            "tl": "150.00",
        }
        page.evaluate("delete document.querySelector('.dash-body').dataset.loaded")
        page.click(".toolbar button")  # Yenile: the dashboard asks again
        page.wait_for_selector(".dash-body[data-loaded]")
        shown = _wallet(page)
        assert (shown["kurus"], shown["low"]) == (10000, "true")
        assert shown["warning"] == (
            "Bakiyeniz azaldı (150,00 TL altında). Hattınızı kesintisiz kullanmak için TL yükleyin."
        )
        page.click("#lang")
        page.wait_for_selector("html[lang=en]")
        assert _wallet(page)["warning"] == (
            "Your balance is low (under 150.00 TL). Top up to keep using your line without a break."
        )
    assert get_json(stack.api, "/api/v1/me/balance", access)["lowWallet"]["kurus"] == 1000


def test_the_dashboard_falls_back_to_ten_lira_only_without_the_field(stack: Stack, new_page: Any) -> None:
    page = new_page("desktop")
    page.goto("/")
    cases = page.evaluate(
        """import('/js/views/dashboard.js').then(m => [
             [999, undefined], [1000, undefined],
             [0, {kurus: 0, tl: '0.00'}], [1999, {kurus: 2000, tl: '20.00'}],
           ].map(([kurus, line]) => {
             const balance = {status: 'active', wallet: {kurus, tl: ''},
                              allowances: [], packages: [], asOf: 0};
             if (line) balance.lowWallet = line;
             const card = m.balanceView(null, balance).querySelector('[data-testid=wallet]');
             const warning = card.querySelector('[data-testid=wallet-low]');
             return [card.dataset.low, warning ? warning.textContent : null];
           }))"""
    )
    tail = ". Hattınızı kesintisiz kullanmak için TL yükleyin."
    assert cases == [
        ["true", f"Bakiyeniz azaldı (10,00 TL altında){tail}"],  # no field: the policy's default
        ["false", None],
        ["false", None],  # a line of 0 is "never told", even for an empty wallet
        ["true", f"Bakiyeniz azaldı (20,00 TL altında){tail}"],
    ]
