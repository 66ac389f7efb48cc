"""The MW: the self-care API and web UI, over the self-care use cases it is given."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from cellcelly.application.accounts import AccountService
from cellcelly.application.renewal import PackageRenewer
from cellcelly.application.selfcare import CodeSender, Policy, SelfCare
from cellcelly.deploy.backends import Backends
from cellcelly.deploy.service import Alone, Group, HttpService, Worker
from cellcelly.mw.app import create_app
from cellcelly.notifier.channels import Channel, Mailbox
from cellcelly.ports.credentials import CredentialStore
from cellcelly.ports.records import SubscriberRecord, SystemOfRecord
from cellcelly.security import Passwords, Tokens
from cellcelly.settings import Settings

log = logging.getLogger(__name__)

SendSms = Callable[[str, str], Awaitable[None]]  # (msisdn, text)
PromptWav = Callable[[Any], Awaitable[bytes]]


def code_sender(email: Channel | None, send_sms: SendSms | None) -> CodeSender | None:
    """Reset codes by SMS (when an SMSC is configured) or e-mail (when SMTP is); SMS asked for
    with no SMSC falls back to e-mail, and the other way round."""
    if email is None and send_sms is None:
        return None

    async def send(to: SubscriberRecord, channel: str, text: str) -> None:
        if (channel == "sms" or email is None) and send_sms is not None:
            await send_sms(to.msisdn, text)
        elif email is not None:
            await email.send(to, "CellCelly şifre sıfırlama kodu", text)

    return send


def token_secret(settings: Settings) -> str:
    if settings.mw_token_secret is not None:
        return settings.mw_token_secret.get_secret_value()
    log.warning("CELLCELLY_MW_TOKEN_SECRET is not set: tokens and reset codes last as long as this process")
    return secrets.token_urlsafe(48)


def selfcare(
    settings: Settings,
    accounts: AccountService,
    credentials: CredentialStore,
    *,
    email: Channel | None,
    send_sms: SendSms | None = None,
) -> SelfCare:
    """The self-care use cases: accounts and credentials, hashes and tokens as configured."""
    return SelfCare(
        accounts=accounts,
        credentials=credentials,
        passwords=Passwords(
            settings.mw_argon2_time_cost, settings.mw_argon2_memory_kib, settings.mw_argon2_parallelism
        ),
        tokens=Tokens(token_secret(settings), settings.mw_access_seconds),
        send_code=code_sender(email, send_sms),
        policy=Policy(max_failures=settings.mw_login_max_failures, lock_seconds=settings.mw_lockout_seconds),
    )


def build(
    settings: Settings,
    selfcare: SelfCare,
    *,
    admin_token: str | None,
    prompt_wav: PromptWav | None = None,
    email: Channel | None = None,
) -> HttpService:
    """`prompt_wav`: the IVR's spoken balance as a WAV (the embedded stack's IVR, else none);
    `email`: the mail catcher's messages are listed at /dev/mailbox when it is one."""
    mailbox = email if isinstance(email, Mailbox) else None
    app = create_app(selfcare, admin_token=admin_token, prompt_wav=prompt_wav, mailbox=mailbox)
    return HttpService("mw", app, settings.mw_host, settings.mw_port)


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly mw`. Its account changes reach the balance store it is configured with: across
    processes that is VoltDB (the embedded store belongs to one process)."""
    if settings.balance_store == "embedded":
        log.warning("cellcelly mw on the embedded balance store: no other process sees its accounts")
    care = selfcare(settings, backends.accounts, backends.credentials, email=backends.email)
    token = settings.admin_token
    service = build(
        settings, care, admin_token=token.get_secret_value() if token else None, email=backends.email
    )
    both = Group("mw", [service, renewer(settings, backends.accounts, backends.records)])
    return Alone(both, lambda: f"MW (self-care API and web UI) on http://{settings.mw_host}:{service.port}/")


def renewer(settings: Settings, accounts: AccountService, records: SystemOfRecord) -> Worker:
    """The package renewer beside the self-care API (every replica may run it: once per period)."""
    renewals = PackageRenewer(accounts, records, every=settings.renewal_every_seconds)
    return Worker("package renewer", renewals.run, renewals.stop)
