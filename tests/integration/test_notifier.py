"""Threshold notifications: decided in the charging step, relayed over the bus, e-mailed once
through a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import pytest

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.bus_embedded import EmbeddedBus
from cellcelly.adapters.sql import SqlNoticeLedger, SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.application.relay import OutboxRelay
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage
from cellcelly.domain.units import Service
from cellcelly.notifier.channels import EmailChannel
from cellcelly.notifier.service import Notifier
from cellcelly.ports.event_bus import NOTIFICATIONS, Outgoing
from cellcelly.ports.records import SubscriberRecord
from cellcelly.settings import DEFAULT_CATALOGUE
from cellcelly.sf.sync import SyncFunction
from cellcelly_testing import Inbox, smtp_sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MSISDN = "5361112233"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as sink:
        yield sink


def text_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


async def test_a_bucket_at_80_percent_is_told_once_by_e_mail(
    tmp_path: Path, records: SqlRecords, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    accounts.open(SubscriberRecord(MSISDN, "Gülşen", "Çağlar", "gulsen@example.com", "active", "ANKARA"))
    charging = ChargingService(store, catalogue)
    call = (ServiceUsage(1, Service.VOICE, 60, 0, "905551112233"),)
    charging.charge(ChargeRequest("long", RequestType.INITIAL, 0, MSISDN, call))
    # ANKARA has 3000 minutes: 2450 used is 81.7%
    used = (ServiceUsage(1, Service.VOICE, 0, 2450 * 60, "905551112233"),)
    charging.charge(ChargeRequest("long", RequestType.TERMINATE, 1, MSISDN, used))

    bus = EmbeddedBus(tmp_path / "bus")
    relay = OutboxRelay(store, bus)
    while await relay.relay_once():
        pass
    notifier = Notifier(bus, records, EmailChannel("127.0.0.1", port), SqlNoticeLedger(records.engine))
    while await notifier.notify_once(timeout=0.05):
        pass
    for _ in range(50):
        if inbox.messages:
            break
        await asyncio.sleep(0.02)
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "gulsen@example.com"
    subject = str(make_header(decode_header(mail["Subject"])))
    assert subject == "ANKARA paketinizdeki dakika hakkınızın %80'ini kullandınız"
    body = text_of(mail)
    assert "Merhaba Gülşen," in body and "Kalan: 550 dakika." in body

    # the same event delivered again (a relay retry, a replay) is not told twice, even after a restart
    again = [
        Outgoing(NOTIFICATIONS, r.key, r.value)
        for r in await bus.consumer("replay", [NOTIFICATIONS]).poll(10, 0.1)
    ]
    assert len(again) == 1
    await bus.publish(again)
    await notifier.close()
    restarted = Notifier(bus, records, EmailChannel("127.0.0.1", port), SqlNoticeLedger(records.engine))
    while await restarted.notify_once(timeout=0.05):
        pass
    await asyncio.sleep(0.1)
    assert len(inbox.messages) == 1 and restarted.stats.duplicates == 1
    await restarted.close()
    store.close()


async def test_the_wallet_going_low_is_told_and_smtp_down_retries(
    tmp_path: Path, records: SqlRecords, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    accounts = AccountService(store, records, catalogue)
    accounts.open(SubscriberRecord(MSISDN, "Ilgın", "Öz", "ilgin@example.com", "active", ""))  # wallet only
    charging = ChargingService(store, catalogue)
    for i in range(24):  # 4 TL each: 100 TL → 4 TL, below the 10 TL line once
        sms = (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),)
        charging.charge(ChargeRequest(f"sms{i}", RequestType.EVENT, 0, MSISDN, sms))
    bus = EmbeddedBus(tmp_path / "bus")
    relay = OutboxRelay(store, bus)
    while await relay.relay_once():
        pass
    dead = Notifier(bus, records, EmailChannel("127.0.0.1", 1), SqlNoticeLedger(records.engine))
    with pytest.raises(OSError):
        await dead.notify_once(timeout=0.05)  # SMTP unreachable: nothing committed, nothing logged
    await dead.close()
    notifier = Notifier(bus, records, EmailChannel("127.0.0.1", port), SqlNoticeLedger(records.engine))
    while await notifier.notify_once(timeout=0.05):
        pass
    await asyncio.sleep(0.1)
    assert len(inbox.messages) == 1
    assert "Bakiyeniz 8,00 TL'ye düştü." in text_of(inbox.messages[0])
    await notifier.close()
    store.close()


async def test_a_package_about_to_expire_is_told_once_per_grant(
    tmp_path: Path, records: SqlRecords, smtp: tuple[Inbox, int]
) -> None:
    """The sweep asks the record which grants end within the horizon: one mail per grant (not per
    bucket: a package has three), never again for the same grant, and none for a grant further off."""
    inbox, port = smtp
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    opened = 1_790_000_000
    accounts = AccountService(store, records, catalogue, clock=lambda: opened)
    accounts.open(SubscriberRecord(MSISDN, "Gülşen", "Çağlar", "gulsen@example.com", "active", "CANAKKALE"))
    other = "5361112244"
    accounts.open(SubscriberRecord(other, "Ali", "Er", "ali@example.com", "active", "ANKARA"))
    bus = EmbeddedBus(tmp_path / "bus")
    relay, sf = OutboxRelay(store, bus), SyncFunction(bus, records)
    while await relay.relay_once():
        pass
    while await sf.sync_once(timeout=0.05):
        pass
    ends = opened + 17 * 86400  # CANAKKALE: 17 days; ANKARA: 30
    now = [ends - 20 * 3600]  # 20 hours before
    notifier = Notifier(
        bus, records, EmailChannel("127.0.0.1", port), SqlNoticeLedger(records.engine), clock=lambda: now[0]
    )
    assert await notifier.sweep_expiring() == 1
    assert await notifier.sweep_expiring() == 0  # the same grant: not again
    now[0] = ends - 3600
    restarted = Notifier(
        bus, records, EmailChannel("127.0.0.1", port), SqlNoticeLedger(records.engine), clock=lambda: now[0]
    )
    assert await restarted.sweep_expiring() == 0  # not after a restart either
    now[0] = ends + 1  # ended: nothing more to tell; ANKARA is still 13 days off
    assert await restarted.sweep_expiring() == 0
    for _ in range(50):
        if inbox.messages:
            break
        await asyncio.sleep(0.02)
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "gulsen@example.com"
    assert str(make_header(decode_header(mail["Subject"]))) == "CANAKKALE paketiniz yakında sona eriyor"
    ends_local = time.strftime("%d.%m.%Y %H:%M", time.gmtime(ends + 3 * 3600))
    assert f"CANAKKALE paketiniz {ends_local} tarihinde sona eriyor" in text_of(mail)
    await notifier.close()
    await restarted.close()
    await sf.close()
    store.close()
