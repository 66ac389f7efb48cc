"""What the subscriber reads, in Turkish, with amounts written the way people say them."""

from __future__ import annotations

import time

from cellcelly.domain.charging import NotificationEvent
from cellcelly.domain.money import format_tl
from cellcelly.domain.turkish_numbers import TURKEY_UTC_OFFSET

_SERVICE_TR = {"voice": "dakika", "sms": "SMS", "data": "internet"}


def tl_text(kurus: int) -> str:
    """12,50 TL: Turkish writes the decimals after a comma."""
    return f"{format_tl(kurus).replace('.', ',')} TL"


def date_text(epoch: int, with_time: bool = False) -> str:
    """dd.mm.yyyy (and HH:MM) in Türkiye time (UTC+3 all year)."""
    return time.strftime(
        "%d.%m.%Y %H:%M" if with_time else "%d.%m.%Y", time.gmtime(epoch + TURKEY_UTC_OFFSET)
    )


def amount_text(service: str, units: int) -> str:
    if service == "voice":
        return f"{units // 60} dakika"
    if service == "sms":
        return f"{units} SMS"
    mb = units // (1024 * 1024)
    if mb >= 1024:
        gb, rest = divmod(mb, 1024)
        return f"{gb},{rest * 10 // 1024} GB" if rest else f"{gb} GB"
    return f"{mb} MB"


def render(event: NotificationEvent, first_name: str, package_name: str = "") -> tuple[str, str]:
    """(subject, text) for a notification; `package_name` is what subscribers know the package by
    ("Diyarbakır"), the code ("DIYARBAKIR") when not given."""
    hello = f"Merhaba {first_name}," if first_name else "Merhaba,"
    package = package_name or event.package
    what = _SERVICE_TR.get(event.service, event.service)
    percent = _bucket_percent(event.kind)
    if percent is not None and percent < 100:  # the catalogue's thresholds (charging.bucket_thresholds)
        left = amount_text(event.service, event.remaining)
        used = f"%{percent}'{_TURKISH_SUFFIX[percent % 10 if percent % 10 else percent // 10 % 10 * 10]}"
        return (
            f"{package} paketinizdeki {what} hakkınızın {used} kullandınız",
            f"{hello}\n\n{package} paketinizdeki {what} hakkınızın {used} kullandınız. "
            f"Kalan: {left}.\n\nCellCelly",
        )
    if event.kind == "bucket-100":
        return (
            f"{package} paketinizdeki {what} hakkınız bitti",
            f"{hello}\n\n{package} paketinizdeki {what} hakkınızın tamamını kullandınız. "
            f"Bundan sonraki kullanımınız bakiyenizden ücretlendirilir; ek paket alabilirsiniz.\n\nCellCelly",
        )
    if event.kind == "wallet-low":
        return (
            "Bakiyeniz azaldı",
            f"{hello}\n\nBakiyeniz {tl_text(event.wallet)}'ye düştü. "
            f"Kesintisiz iletişim için yükleme yapabilirsiniz.\n\nCellCelly",
        )
    if event.kind == "package-renewed":
        return (
            f"{package} paketiniz yenilendi",
            f"{hello}\n\n{package} paketiniz bakiyenizden yenilendi; yeni dönem "
            f"{date_text(event.valid_until)} tarihine kadar geçerli. Kalan bakiyeniz "
            f"{tl_text(event.wallet)}.\n\nCellCelly",
        )
    if event.kind == "package-renewal-failed":
        return (
            f"{package} paketiniz yenilenemedi",
            f"{hello}\n\n{package} paketiniz bakiyeniz yetmediği için yenilenemedi "
            f"(bakiye {tl_text(event.wallet)}). TL yükleyip paketi yeniden "
            f"alabilirsiniz.\n\nCellCelly",
        )
    if event.kind == "package-renewing":
        ends = date_text(event.valid_until, with_time=True)
        return (
            f"{package} paketiniz yakında yenileniyor",
            f"{hello}\n\n{package} paketiniz {ends} tarihinde sona eriyor ve seçiminiz üzerine "
            f"bakiyenizden yenilenecek. Bakiyeniz yetmezse yenilenemez.\n\nCellCelly",
        )
    if event.kind == "package-expiring":
        ends = date_text(event.valid_until, with_time=True)
        return (
            f"{package} paketiniz yakında sona eriyor",
            f"{hello}\n\n{package} paketiniz {ends} tarihinde sona eriyor. Kalan haklarınız "
            f"o zaman silinir; paketinizi yenileyebilirsiniz.\n\nCellCelly",
        )
    return ("CellCelly bildirimi", f"{hello}\n\n{event.kind}\n\nCellCelly")


def _bucket_percent(kind: str) -> int | None:
    number = kind.removeprefix("bucket-")
    return int(number) if number != kind and number.isdigit() else None


# the accusative suffix after a percent read aloud ("yüzde seksen" -> %80'ini, "yüzde elli" -> %50'sini):
# vowel harmony on the last word's last vowel, "s" after a vowel; keyed by the last non-zero digit
# (units, else tens x 10)
_TURKISH_SUFFIX = {
    1: "ini", 2: "sini", 3: "ünü", 4: "ünü", 5: "ini", 6: "sını", 7: "sini", 8: "ini", 9: "unu",
    10: "unu", 20: "sini", 30: "unu", 40: "ını", 50: "sini", 60: "ını", 70: "ini", 80: "ini", 90: "ını",
}  # fmt: skip
