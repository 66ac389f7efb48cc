"""The notifier: notices from the bus to subscribers, by the SMS gateway's channel when there is
one, else by e-mail."""

from __future__ import annotations

from cellcelly.catalogue_store import CatalogueHolder, package_namer
from cellcelly.deploy.service import Worker
from cellcelly.notifier.channels import Channel
from cellcelly.notifier.service import Notifier
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.notices import NoticeLedger
from cellcelly.ports.records import SystemOfRecord


class NotifierService(Worker):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        super().__init__("notifier", notifier.run, notifier.stop, notifier.close)


def channel(sms: Channel | None, email: Channel | None) -> Channel | None:
    """SMS when an SMSC is configured, else e-mail, else none (then nothing can be told)."""
    return sms if sms is not None else email


def build(
    bus: EventBus,
    records: SystemOfRecord,
    ledger: NoticeLedger,
    channel: Channel,
    catalogue: CatalogueHolder,
) -> NotifierService:
    """`catalogue`: package names as the OCS has them in force."""
    notifier = Notifier(bus, records, channel, ledger, package_name=package_namer(catalogue))
    return NotifierService(notifier)
