"""The notifier: notices from the bus to subscribers, by the SMS gateway's channel when there is
one, else by e-mail."""

from __future__ import annotations

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.catalogue_store import CatalogueHolder, package_namer
from cellcelly.deploy import sms
from cellcelly.deploy.backends import Backends
from cellcelly.deploy.service import Alone, Group, Service, Worker
from cellcelly.errors import ConfigurationError
from cellcelly.notifier.channels import Channel
from cellcelly.notifier.service import Notifier
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.notices import NoticeLedger
from cellcelly.ports.records import SystemOfRecord
from cellcelly.settings import Settings


class NotifierService(Worker):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        super().__init__("notifier", notifier.run, notifier.stop, notifier.close)


def channel(sms: Channel | None, email: Channel | None) -> Channel | None:
    """SMS when an SMSC is configured, else e-mail, else none (then nothing can be told)."""
    return sms if sms is not None else email


def build(
    settings: Settings,
    bus: EventBus,
    records: SystemOfRecord,
    ledger: NoticeLedger,
    channel: Channel,
    catalogue: CatalogueHolder,
) -> NotifierService:
    """`catalogue`: package names as the OCS has them in force."""
    notifier = Notifier(
        bus,
        records,
        channel,
        ledger,
        lease=settings.notice_lease_seconds,
        package_name=package_namer(catalogue),
    )
    return NotifierService(notifier)


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly notifier`: by SMS with an SMSC (its own SMPP bind, which answers KALAN too), else
    by e-mail (SMTP, or the mail catcher's file: `cellcelly run`'s notifier child)."""
    if not settings.smsc_host and backends.email is None:
        raise ConfigurationError("set CELLCELLY_SMSC_HOST or CELLCELLY_SMTP_HOST")
    services: list[Service] = []
    gateway = None
    if settings.smsc_host:
        gateway = sms.build(settings, StoreBalanceLookup(backends.store), backends.catalogue)
        services.append(gateway)
    told = channel(gateway.gateway.channel if gateway else None, backends.email)
    assert told is not None  # one of the two is configured (checked above)
    services.append(
        build(settings, backends.bus, backends.records, backends.notice_ledger, told, backends.catalogue)
    )
    by = "SMS" if gateway else "e-mail"
    return Alone(Group("notifier", services), lambda: f"notifier: {settings.event_bus} event bus -> {by}")
