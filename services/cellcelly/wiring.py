"""Builds the components a service needs from the settings: adapters are chosen here, by
configuration, never by editing code."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.sql import SqlRecords
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueFollower, CatalogueHolder, parse_catalogue_text
from cellcelly.domain.catalogue import Catalogue
from cellcelly.domain.errors import CatalogueError
from cellcelly.ports.balance_store import BalanceStore
from cellcelly.ports.cache import SubscriberCache, SubscriberInfo
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.records import CatalogueConflict, SystemOfRecord
from cellcelly.settings import DEFAULT_CATALOGUE, Settings

log = logging.getLogger(__name__)

CATALOGUE_POLL_SECONDS = 2.0  # how soon every OCS charges with a catalogue put in force elsewhere


@dataclass
class Components:
    settings: Settings
    store: BalanceStore
    records: SystemOfRecord
    catalogue: CatalogueHolder
    charging: ChargingService
    accounts: AccountService
    follower: CatalogueFollower | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.store.close()
        self.records.close()


def build_store(settings: Settings) -> BalanceStore:
    if settings.balance_store == "embedded":
        return EmbeddedBalanceStore(settings.data_dir / "balances", fsync=settings.balance_fsync)
    if settings.balance_store == "voltdb":
        from cellcelly.adapters.balance_voltdb import VoltBalanceStore

        return VoltBalanceStore(
            settings.voltdb_servers,
            username=settings.voltdb_username,
            password=settings.voltdb_password.get_secret_value(),
        )
    raise ValueError(f"unknown balance store {settings.balance_store!r}")


def build_bus(settings: Settings) -> EventBus:
    if settings.event_bus == "kafka":
        from cellcelly.adapters.bus_kafka import KafkaBus, KafkaSecurity

        security = KafkaSecurity(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=settings.kafka_password.get_secret_value(),
            cafile=settings.kafka_ssl_cafile,
        )
        return KafkaBus(settings.kafka_bootstrap, security=security)
    from cellcelly.adapters.bus_embedded import EmbeddedBus

    return EmbeddedBus(settings.data_dir / "bus")


def build_cache(settings: Settings, loader: Callable[[str], SubscriberInfo | None]) -> SubscriberCache:
    if settings.cache == "hazelcast":
        from cellcelly.adapters.cache_hazelcast import HazelcastCache

        members = [m.strip() for m in settings.hazelcast_members.split(",") if m.strip()]
        return HazelcastCache(
            loader,
            members=members,
            cluster_name=settings.hazelcast_cluster,
            username=settings.hazelcast_username,
            password=settings.hazelcast_password.get_secret_value(),
        )
    from cellcelly.adapters.cache_embedded import EmbeddedCache

    return EmbeddedCache(loader)


def _tell_if_not_the_bundled_catalogue(in_force: str) -> None:
    """The bundled catalogue seeds a fresh data dir only: an existing one keeps its prices, so say so."""
    try:
        bundled = parse_catalogue_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8")).version
    except (OSError, CatalogueError):
        return
    if bundled != in_force:
        log.info(
            "the catalogue in force is not the bundled one; its prices stay until a new version is put"
            " in force (PUT the bundled file to /admin/catalogue to take it)",
            extra={"in_force": in_force, "bundled": bundled, "bundled_file": str(DEFAULT_CATALOGUE)},
        )


def follow_the_record(catalogue: CatalogueHolder, records: SystemOfRecord) -> CatalogueFollower:
    """The record says which catalogue is in force; the file only seeds an empty record. A change
    is written there first (refused whole if the version is on record with other content), and
    every process follows it within one poll, restarts included."""
    seed = catalogue.current
    try:
        records.put_catalogue_in_force(seed.version, seed.source, int(time.time()), only_if_none=True)
    except CatalogueConflict:  # the file was edited without a new version: the record wins
        log.warning(
            "the catalogue file's version is on record with other content", extra={"version": seed.version}
        )

    def activate(new: Catalogue) -> None:
        try:
            records.put_catalogue_in_force(new.version, new.source, int(time.time()))
        except CatalogueConflict:
            raise CatalogueError(
                [f"version {new.version!r} is on record with other content: bump the version"]
            ) from None

    follower = CatalogueFollower(catalogue, records, interval=CATALOGUE_POLL_SECONDS)
    follower.poll()  # start on the version in force, before the first request
    catalogue.on_change = activate
    follower.start()
    return follower


def build(settings: Settings) -> Components:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.catalogue_path()
    if not path.exists():
        path.write_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"), encoding="utf-8")
    catalogue = CatalogueHolder.from_file(path)
    records = SqlRecords(settings.sor_url())
    records.migrate()
    follower = follow_the_record(catalogue, records)
    _tell_if_not_the_bundled_catalogue(catalogue.current.version)
    store = build_store(settings)
    return Components(
        settings,
        store,
        records,
        catalogue,
        ChargingService(store, catalogue),
        AccountService(store, records, catalogue),
        follower,
    )
