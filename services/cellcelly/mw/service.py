"""Builds the self-care use cases and the MW app from the settings and the stack's components."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from cellcelly.adapters.sql.credentials import SqlCredentials
from cellcelly.application.selfcare import CodeSender, Policy, SelfCare
from cellcelly.mw.app import create_app
from cellcelly.notifier.channels import EmailChannel
from cellcelly.ports.records import SubscriberRecord
from cellcelly.security import Passwords, Tokens
from cellcelly.settings import Settings
from cellcelly.wiring import Components

log = logging.getLogger(__name__)

SendSms = Callable[[str, str], Awaitable[None]]  # (msisdn, text)


def code_sender(settings: Settings, send_sms: SendSms | None) -> CodeSender | None:
    """Reset codes by SMS (when an SMSC is configured) or e-mail (when SMTP is); SMS asked for
    with no SMSC falls back to e-mail, and the other way round."""
    email = (
        EmailChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        if settings.smtp_host
        else None
    )
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


def build_selfcare(components: Components, send_sms: SendSms | None = None) -> SelfCare:
    settings = components.settings
    engine = getattr(components.records, "engine", None)
    if engine is None:
        raise RuntimeError("self-care needs the SQL system of record")
    return SelfCare(
        accounts=components.accounts,
        credentials=SqlCredentials(engine),
        passwords=Passwords(
            settings.mw_argon2_time_cost, settings.mw_argon2_memory_kib, settings.mw_argon2_parallelism
        ),
        tokens=Tokens(token_secret(settings), settings.mw_access_seconds),
        send_code=code_sender(settings, send_sms),
        policy=Policy(max_failures=settings.mw_login_max_failures, lock_seconds=settings.mw_lockout_seconds),
    )


def build_app(components: Components, selfcare: SelfCare, prompt_wav: Any = None) -> FastAPI:
    token = components.settings.admin_token
    return create_app(
        selfcare, admin_token=token.get_secret_value() if token else None, prompt_wav=prompt_wav
    )
