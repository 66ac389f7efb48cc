"""What the short code answers, in Turkish, with amounts written as on the web and in notices."""

from __future__ import annotations

from collections.abc import Callable

from cellcelly.domain.balance_summary import BalanceSummary
from cellcelly.domain.units import Service
from cellcelly.notifier.messages import amount_text, date_text, tl_text
from cellcelly.sms.keywords import SHOWN

_LABELS = {Service.VOICE: "Dakika", Service.SMS: "SMS", Service.DATA: "İnternet"}
_STATUS = {"suspended": "Hattınız askıya alınmıştır.", "closed": "Hattınız kapatılmıştır."}


def keyword_list() -> str:
    return "; ".join(f"{word}: {what}" for word, what in SHOWN)


def balance(summary: BalanceSummary, package_name: Callable[[str], str]) -> str:
    lines = ["CellCelly kalan haklarınız:", f"Bakiye: {tl_text(summary.wallet)}"]
    if summary.status in _STATUS:
        lines.insert(1, _STATUS[summary.status])
    with_units = [a for a in summary.allowances if a.total > 0]
    ends = {a.valid_until for a in with_units if a.valid_until is not None}
    for a in with_units:
        line = f"{_LABELS[a.service]}: {amount_text(a.service.value, a.remaining)}"
        if len(ends) > 1 and a.valid_until is not None:
            line += f" ({date_text(a.valid_until)} tarihine kadar)"
        lines.append(line)
    if summary.packages:
        lines.append("Paket: " + ", ".join(package_name(code) for code in summary.packages))
    if len(ends) == 1:
        lines.append(f"Geçerlilik: {date_text(ends.pop())} tarihine kadar")
    if not with_units:
        lines.append("Aktif paketiniz yok.")
    return "\n".join(lines)


def help_text(short_code: str) -> str:
    return f"CellCelly SMS komutları ({short_code} numarasına gönderin): {keyword_list()}."


def unknown_keyword(short_code: str, text: str) -> str:
    shown = " ".join(text.split())
    if len(shown) > 20:
        shown = shown[:19] + "…"
    said = f'"{shown}" anlaşılamadı. ' if shown else "Boş mesaj aldık. "
    return f"{said}Kullanabileceğiniz komutlar ({short_code} numarasına gönderin): {keyword_list()}."


def not_a_subscriber() -> str:
    return (
        "Merhaba, CellCelly abonesi değilsiniz; bu servis yalnızca CellCelly abonelerine açıktır. "
        "Abone olmak için CellCelly web sitesinden kayıt olabilirsiniz."
    )


def try_later() -> str:
    return "Şu anda bilgilerinize ulaşamıyoruz. Lütfen biraz sonra tekrar deneyin. CellCelly"
