"""What the browser journeys share: fresh subscribers, UI steps, API checks, and the figures the
dashboard must show, formatted here independently of the page's JavaScript (Turkish locale)."""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

from cellcelly_testing import Inbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
DEVICES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 375, "height": 667},
        "is_mobile": True,
        "device_scale_factor": 2,
        "has_touch": True,
    },
}

MB = 1048576
GB = 1073741824
PASSWORD = "Güçlü-Şifre1"
SECURITY_KEY = "kırmızı elma"
TURKISH_FIRST = "Çağrı Şükrü"
TURKISH_LAST = "Öğüt İğdır"


def body_text(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


@dataclass
class Stack:
    base_url: str
    ocs_url: str
    inbox: Inbox
    log_path: Path
    process: subprocess.Popen[bytes]
    admin_token: str
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(base_url=self.base_url, timeout=20.0)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Subscriber:
    msisdn: str
    email: str
    password: str = PASSWORD
    security_key: str = SECURITY_KEY
    first_name: str = TURKISH_FIRST
    last_name: str = TURKISH_LAST
    package: str = "ANKARA"


def fresh_subscriber() -> Subscriber:
    """A subscriber nobody has registered yet: 10 digits starting with 5 (54x: no demo clash)."""
    msisdn = "54" + "".join(secrets.choice("0123456789") for _ in range(8))
    return Subscriber(msisdn=msisdn, email=f"abone.{msisdn}@example.com")


def register_api(api: httpx.Client, sub: Subscriber) -> None:
    r = api.post(
        "/api/v1/auth/register",
        json={
            "firstName": sub.first_name,
            "lastName": sub.last_name,
            "msisdn": sub.msisdn,
            "email": sub.email,
            "password": sub.password,
            "securityKey": sub.security_key,
            "package": sub.package,
        },
    )
    assert r.status_code == 201, r.text


def token(api: httpx.Client, msisdn: str, password: str) -> str:
    r = api.post("/api/v1/auth/login", json={"msisdn": msisdn, "password": password, "rememberMe": False})
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


def get_json(api: httpx.Client, path: str, access: str) -> Any:
    r = api.get(path, headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 200, r.text
    return r.json()


def grouped_tr(n: int) -> str:
    return f"{n:,}".replace(",", ".")


def money_tr(kurus: int) -> str:
    return f"{grouped_tr(kurus // 100)},{kurus % 100:02d} TL"


def _two_decimals_tr(numerator: int, denominator: int) -> str:
    hundredths = numerator * 100 // denominator
    frac = f"{hundredths % 100:02d}".rstrip("0")
    return f"{grouped_tr(hundredths // 100)},{frac}" if frac else grouped_tr(hundredths // 100)


def amount_tr(service: str, units: int) -> str:
    """What the dashboard shows for an allowance (the contract: minutes = seconds // 60, 1 MB = 2^20)."""
    if service == "voice":
        return f"{grouped_tr(units // 60)} dk"
    if service == "sms":
        return f"{grouped_tr(units)} SMS"
    if units >= GB:
        return f"{_two_decimals_tr(units, GB)} GB"
    if units >= MB or units == 0:
        return f"{_two_decimals_tr(units, MB)} MB"
    return f"{grouped_tr(-(-units // 1024))} KB"


def fill_register(page: Any, sub: Subscriber, confirm: str | None = None) -> None:
    page.goto("/#/register")
    page.wait_for_selector(".pkg-card")
    page.fill("input[name=firstName]", sub.first_name)
    page.fill("input[name=lastName]", sub.last_name)
    page.fill("input[name=msisdn]", sub.msisdn)
    page.fill("input[name=email]", sub.email)
    page.fill("input[name=password]", sub.password)
    page.fill("input[name=passwordConfirm]", sub.password if confirm is None else confirm)
    page.fill("input[name=securityKey]", sub.security_key)
    page.click(f"label[for=pkg-{sub.package}]")
    assert page.is_checked(f"#pkg-{sub.package}")


def login_ui(page: Any, msisdn: str, password: str, remember: bool = False) -> None:
    page.goto("/#/login")
    page.wait_for_selector("body[data-view=login]")
    page.fill("input[name=msisdn]", msisdn)
    page.fill("input[name=password]", password)
    if remember:
        page.check("#remember")
    page.click("form button[type=submit]")


def banner_text(page: Any, kind: str) -> str:
    return str(page.locator(f"[data-testid=form-message].{kind}").inner_text())


def field_codes(page: Any, name: str) -> list[str]:
    return list(
        page.locator(f"[data-error-for={name}] [data-code]").evaluate_all(
            "els => els.map(e => e.dataset.code)"
        )
    )


def field_errors(page: Any, name: str) -> list[str]:
    return list(page.locator(f"[data-error-for={name}] p").all_inner_texts())


def wait_true(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Poll a JS expression until truthy. (page.wait_for_function evaluates a string with eval,
    which the MW's Content-Security-Policy, rightly, forbids.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.1)
    raise AssertionError(f"{expression} still false after {timeout}s")
