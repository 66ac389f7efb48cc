"""The short code's answers: Turkish-aware keywords, sender addresses in every form, balances
written the Turkish way, and a helpful answer to everything else."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcelly.domain.balance_summary import Allowance, BalanceSummary
from cellcelly.domain.units import Service
from cellcelly.sms import replies
from cellcelly.sms.channel import compact, sender_address, shorten
from cellcelly.sms.encoding import encode_text
from cellcelly.sms.keywords import Keyword, fold, match, turkish_upper
from cellcelly.sms.pdu import Npi, Ton
from cellcelly.sms.service import Address, MobileOriginated, SmsService, subscriber_of

pytestmark = pytest.mark.unit

MB = 1024 * 1024
ENDS = calendar.timegm((2026, 12, 31, 20, 59, 0)) + 3600 * 2  # 31.12.2026 22:59 UTC = 01.01.2027 01:59 TRT


def summary(msisdn: str = "5321234567", **kw: object) -> BalanceSummary:
    fields: dict[str, object] = {
        "msisdn": msisdn,
        "status": "active",
        "wallet": 1250,
        "allowances": (
            Allowance(Service.VOICE, 6999 * 60 + 30, 7000 * 60, ENDS),
            Allowance(Service.SMS, 7000, 7000, ENDS),
            Allowance(Service.DATA, 7 * 1024 * MB, 7 * 1024 * MB, ENDS),
        ),
        "packages": ("DIYARBAKIR",),
    }
    fields.update(kw)
    return BalanceSummary(**fields)  # type: ignore[arg-type]


class Lookup:
    def __init__(self, known: dict[str, BalanceSummary], fail: bool = False) -> None:
        self.known, self.fail = known, fail
        self.asked: list[str] = []

    async def __call__(self, msisdn: str) -> BalanceSummary | None:
        self.asked.append(msisdn)
        if self.fail:
            raise ConnectionError("store down")
        return self.known.get(msisdn)


NAMES = {"DIYARBAKIR": "Diyarbakır", "CANAKKALE": "Çanakkale"}


def service(lookup: Lookup) -> SmsService:
    return SmsService(lookup, NAMES.__getitem__, "5555")


def mo(
    text: str, source: str = "905321234567", ton: int = Ton.INTERNATIONAL, to: str = "5555"
) -> MobileOriginated:
    return MobileOriginated(Address(source, ton, Npi.ISDN), Address(to), text)


@pytest.mark.parametrize(
    "text",
    ["KALAN", "kalan", "Kalan", " KALAN ", "kAlAn\n", "KALAN.", "kalan lütfen", "bakiye", "BAKİYE", "Bakıye"],
)
def test_kalan_in_any_case(text: str) -> None:
    assert match(text) is Keyword.KALAN


@pytest.mark.parametrize(
    "text", ["YARDIM", "yardım", "Yardım", "yardim", "YARDİM", "YARDI\u0307M", "help", "Help"]
)
def test_yardim_with_every_i(text: str) -> None:
    assert match(text) is Keyword.YARDIM


@pytest.mark.parametrize("text", ["", "   ", "KALANX", "SALAN", "merhaba", "ıı", "😀"])
def test_not_keywords(text: str) -> None:
    assert match(text) is None


def test_turkish_upper_case_is_not_pythons() -> None:
    assert turkish_upper("istanbul ılık") == "İSTANBUL ILIK"
    assert fold("istanbul") == fold("ISTANBUL") == fold("İstanbul") == "ISTANBUL"


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet="kalnKALN ıiİI\t", max_size=12))
def test_folding_is_idempotent_and_case_blind(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    assert fold(text.lower()) == fold(turkish_upper(text))


@pytest.mark.parametrize(
    ("address", "ton", "msisdn"),
    [
        ("905321234567", Ton.INTERNATIONAL, "5321234567"),
        ("+905321234567", Ton.INTERNATIONAL, "5321234567"),
        ("5321234567", Ton.NATIONAL, "5321234567"),
        ("05321234567", Ton.NATIONAL, "5321234567"),
        ("5321234567", Ton.UNKNOWN, "5321234567"),
        ("905321234567", Ton.UNKNOWN, "5321234567"),
        ("00905321234567", Ton.UNKNOWN, "5321234567"),
        ("4915112345678", Ton.INTERNATIONAL, None),  # a German number
        ("5321234567", Ton.INTERNATIONAL, None),  # international without the country code
        ("CellCelly", Ton.ALPHANUMERIC, None),
        ("4321234567", Ton.NATIONAL, None),
        ("", Ton.UNKNOWN, None),
    ],
)
def test_sender_addresses(address: str, ton: int, msisdn: str | None) -> None:
    assert subscriber_of(Address(address, ton, Npi.ISDN)) == msisdn


async def test_kalan_answers_the_balance_in_turkish() -> None:
    lookup = Lookup({"5321234567": summary()})
    reply = await service(lookup).answer(mo(" kalan "))
    assert reply is not None and lookup.asked == ["5321234567"]
    assert reply.to == Address("905321234567", Ton.INTERNATIONAL, Npi.ISDN)
    assert reply.text == (
        "CellCelly kalan haklarınız:\n"
        "Bakiye: 12,50 TL\n"
        "Dakika: 6999 dakika\n"
        "SMS: 7000 SMS\n"
        "İnternet: 7 GB\n"
        "Paket: Diyarbakır\n"
        "Geçerlilik: 01.01.2027 tarihine kadar"
    )
    assert encode_text(reply.text)[0].data_coding == 8


async def test_different_end_dates_are_given_per_line_and_suspension_is_said() -> None:
    early = calendar.timegm((2026, 12, 10, 12, 0, 0))
    s = summary(
        status="suspended",
        wallet=5,
        allowances=(
            Allowance(Service.VOICE, 0, 60, None),
            Allowance(Service.SMS, 0, 0, None),
            Allowance(Service.DATA, 1536 * MB, 17 * 1024 * MB, early),
        ),
        packages=("CANAKKALE", "DIYARBAKIR"),
    )
    reply = await service(Lookup({"5321234567": s})).answer(mo("KALAN", "5321234567", Ton.NATIONAL))
    assert reply is not None
    lines = reply.text.split("\n")
    assert lines[1] == "Hattınız askıya alınmıştır." and lines[2] == "Bakiye: 0,05 TL"
    assert "Dakika: 0 dakika" in lines and not any(line.startswith("SMS") for line in lines)
    assert "İnternet: 1,5 GB" in lines  # amount_text's tenths
    assert "Paket: Çanakkale, Diyarbakır" in lines
    assert lines[-1] == "Geçerlilik: 10.12.2026 tarihine kadar"  # the only bucket with units left


async def test_a_subscriber_with_no_package_is_told_so() -> None:
    none_left = tuple(Allowance(s, 0, 0, None) for s in (Service.VOICE, Service.SMS, Service.DATA))
    reply = await service(Lookup({"5321234567": summary(allowances=none_left, packages=())})).answer(
        mo("kalan")
    )
    assert reply is not None and reply.text.endswith("Bakiye: 12,50 TL\nAktif paketiniz yok.")


async def test_yardim_lists_the_keywords_even_to_strangers() -> None:
    reply = await service(Lookup({})).answer(mo("yardım", "4915112345678"))
    assert reply is not None and reply.to.digits == "4915112345678"
    assert "KALAN" in reply.text and "YARDIM" in reply.text and "5555" in reply.text


async def test_unknown_sender_is_told_politely() -> None:
    lookup = Lookup({})
    reply = await service(lookup).answer(mo("KALAN", "905551112233"))
    assert reply is not None and "CellCelly abonesi değilsiniz" in reply.text
    assert reply.to.digits == "905551112233" and lookup.asked == ["5551112233"]


async def test_unknown_keyword_gets_the_list() -> None:
    reply = await service(Lookup({"5321234567": summary()})).answer(mo("Merhaba, faturam ne kadar acaba?"))
    assert reply is not None
    assert reply.text.startswith('"Merhaba, faturam ne…" anlaşılamadı.')
    assert "KALAN" in reply.text and "YARDIM" in reply.text


async def test_other_short_codes_and_unanswerable_senders_get_nothing() -> None:
    lookup = Lookup({"5321234567": summary()})
    assert await service(lookup).answer(mo("KALAN", to="4444")) is None
    assert await service(lookup).answer(mo("KALAN", "CellCelly", Ton.ALPHANUMERIC)) is None
    assert lookup.asked == []
    assert await service(lookup).answer(mo("KALAN", to="+5555")) is not None


async def test_a_failing_store_gets_a_try_later_answer() -> None:
    reply = await service(Lookup({}, fail=True)).answer(mo("KALAN"))
    assert reply is not None and reply.text == replies.try_later()


def test_money_and_dates_the_turkish_way() -> None:
    assert replies.tl_text(1250) == "12,50 TL" and replies.tl_text(0) == "0,00 TL"
    assert replies.tl_text(123456) == "1234,56 TL"
    assert replies.date_text(calendar.timegm((2026, 12, 31, 21, 0, 0))) == "01.01.2027"  # midnight in Türkiye
    assert replies.date_text(calendar.timegm((2026, 12, 31, 20, 59, 59))) == "31.12.2026"


def test_sender_addresses_for_submit() -> None:
    assert sender_address("5555") == Address("5555", Ton.NETWORK_SPECIFIC, Npi.UNKNOWN)
    assert sender_address("CellCelly") == Address("CellCelly", Ton.ALPHANUMERIC, Npi.UNKNOWN)
    assert sender_address("+905321234567") == Address("905321234567", Ton.INTERNATIONAL, Npi.ISDN)
    with pytest.raises(ValueError):
        sender_address("CellCellyTelekom")


def test_notices_are_compacted_and_cut_at_a_word() -> None:
    text = "Merhaba Gülşen,\n\nANKARA paketinizdeki dakika hakkınızın %80'ini kullandınız.\n\nCellCelly"
    assert (
        compact(text)
        == "Merhaba Gülşen, ANKARA paketinizdeki dakika hakkınızın %80'ini kullandınız. CellCelly"
    )
    long = "kelime " * 100
    cut = shorten(long.strip(), 2)
    assert cut.endswith("…") and len(encode_text(cut)) == 2 and cut[:-1].endswith("kelime")
    assert shorten("kısa", 1) == "kısa"


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=900), st.integers(1, 5))
def test_shortened_texts_fit(text: str, parts: int) -> None:
    cut = shorten(text, parts)
    assert len(encode_text(cut)) <= parts
    assert cut == text or cut.endswith("…")


async def test_each_line_has_its_end_date_when_they_differ() -> None:
    early = calendar.timegm((2026, 12, 10, 12, 0, 0))
    s = summary(
        allowances=(
            Allowance(Service.VOICE, 600, 600, early),
            Allowance(Service.SMS, 0, 0, None),
            Allowance(Service.DATA, 512 * MB, 1024 * MB, ENDS),
        )
    )
    reply = await service(Lookup({"5321234567": s})).answer(mo("KALAN"))
    assert reply is not None
    assert "Dakika: 10 dakika (10.12.2026 tarihine kadar)" in reply.text.split("\n")
    assert "İnternet: 512 MB (01.01.2027 tarihine kadar)" in reply.text.split("\n")
    assert "Geçerlilik" not in reply.text
