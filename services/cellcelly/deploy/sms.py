"""The SMS gateway: an SMPP client (ESME) answering KALAN with the balance; its channel also
carries the notifier's notices and self-care's reset codes when an SMSC is configured."""

from __future__ import annotations

from cellcelly.application.selfcare import StoreBalanceLookup
from cellcelly.catalogue_store import CatalogueHolder, package_namer
from cellcelly.deploy.backends import Backends
from cellcelly.deploy.service import Alone, Lifecycle
from cellcelly.errors import ConfigurationError
from cellcelly.ports.selfcare import BalanceLookup
from cellcelly.settings import Settings
from cellcelly.sms.gateway import SmsGateway


class Sms(Lifecycle):
    def __init__(self, gateway: SmsGateway) -> None:
        self.gateway = gateway
        super().__init__("sms", gateway.start, gateway.stop)  # binds in the background, retrying


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly sms`: KALAN answered from the balance store it is configured with (VoltDB across
    processes)."""
    if not settings.smsc_host:
        raise ConfigurationError("set CELLCELLY_SMSC_HOST (and SMSC_PORT, SMSC_SYSTEM_ID, SMSC_PASSWORD)")
    service = build(settings, StoreBalanceLookup(backends.store), backends.catalogue)
    return Alone(
        service,
        lambda: (
            f"SMS gateway: SMSC {settings.smsc_host}:{settings.smsc_port}, KALAN to {settings.sms_short_code}"
        ),
    )


def build(settings: Settings, lookup: BalanceLookup, catalogue: CatalogueHolder) -> Sms:
    return Sms(
        SmsGateway(
            settings.smsc_host,
            settings.smsc_port,
            settings.smsc_system_id,
            settings.smsc_password.get_secret_value(),
            lookup,
            package_name=package_namer(catalogue),
            short_code=settings.sms_short_code,
            notice_sender=settings.sms_sender,
            system_type=settings.smsc_system_type,
            enquire_link_interval=settings.smsc_enquire_link_seconds,
        )
    )
