"""The adapters a process uses, chosen from `Settings` by configuration (never by editing code),
each built once on first use and closed once.

This is the only module that knows the system of record is SQL (credentials and the notice
ledger live on its engine); deployables receive ports and application services from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.sql import SqlRecords
from cellcelly.adapters.sql.credentials import SqlCredentials
from cellcelly.adapters.sql.notices import SqlNoticeLedger
from cellcelly.application.accounts import AccountService
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueFollower, CatalogueHolder, parse_catalogue_text
from cellcelly.domain.catalogue import Catalogue
from cellcelly.domain.errors import CatalogueError
from cellcelly.errors import ConfigurationError, StoreError
from cellcelly.notifier.channels import EmailChannel, Mailbox
from cellcelly.ports.balance_store import BalanceStore
from cellcelly.ports.cache import SubscriberCache, SubscriberInfo
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.records import CatalogueConflict, SystemOfRecord
from cellcelly.settings import DEFAULT_CATALOGUE, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

CATALOGUE_POLL_SECONDS = 2.0  # how soon every OCS charges with a catalogue put in force elsewhere


class Backends:
    """What a process dials, opened lazily: a service that never asks for the bus never dials it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._follower: CatalogueFollower | None = None
        self._closed = False

    # --- adapters -------------------------------------------------------------------------------

    @cached_property
    def records(self) -> SqlRecords:
        """The system of record, at the newest schema (waiting for it to answer, at start-up)."""
        from sqlalchemy.exc import OperationalError

        def migrated() -> SqlRecords:
            records = SqlRecords(self.settings.sor_url(), sqlite_cache_mib=self.settings.sqlite_cache_mib)
            try:
                records.migrate()
            except BaseException:
                records.close()
                raise
            return records

        return patiently(
            "the system of record", migrated, self.settings.startup_wait_seconds, OperationalError
        )

    @cached_property
    def store(self) -> BalanceStore:
        return build_store(self.settings)

    @cached_property
    def bus(self) -> EventBus:
        return build_bus(self.settings)

    @cached_property
    def catalogue(self) -> CatalogueHolder:
        """The catalogue in force, following the record (the file only seeds an empty record)."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.catalogue_path()
        if not path.exists():
            path.write_text(DEFAULT_CATALOGUE.read_text(encoding="utf-8"), encoding="utf-8")
        holder = CatalogueHolder.from_file(path)
        self._follower = follow_the_record(holder, self.records)
        _tell_if_not_the_bundled_catalogue(holder.current.version)
        return holder

    @cached_property
    def cache(self) -> SubscriberCache:
        """Who a subscriber is (exists, status), in front of the balance store."""
        store = self.store

        def lookup(msisdn: str) -> SubscriberInfo | None:
            account = store.get(msisdn)
            return None if account is None else SubscriberInfo(msisdn, account.status.value)

        async def lookup_async(msisdn: str) -> SubscriberInfo | None:  # on loops: never blocks them
            account = await store.get_async(msisdn)
            return None if account is None else SubscriberInfo(msisdn, account.status.value)

        return build_cache(self.settings, lookup, lookup_async)

    @cached_property
    def credentials(self) -> SqlCredentials:
        return SqlCredentials(self.records.engine)

    @cached_property
    def notice_ledger(self) -> SqlNoticeLedger:
        """Which notices were told: in the record, so replicas and restarts tell each one once."""
        return SqlNoticeLedger(self.records.engine)

    @cached_property
    def email(self) -> EmailChannel | Mailbox | None:
        """E-mail to subscribers; without CELLCELLY_SMTP_HOST the mail catcher when it is on
        (`make run`), else None."""
        s = self.settings
        if s.smtp_host:
            return EmailChannel(s.smtp_host, s.smtp_port, s.smtp_sender)
        if s.mail_catcher:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            return Mailbox(s.data_dir / "mailbox.jsonl")
        return None

    # --- application services over them -------------------------------------------------------

    @cached_property
    def charging(self) -> ChargingService:
        return ChargingService(self.store, self.catalogue)

    @cached_property
    def accounts(self) -> AccountService:
        """Account changes; each one forgets the subscriber in this process's cache, if it has one
        (Hazelcast passes the invalidation on to every other process)."""
        accounts = AccountService(self.store, self.records, self.catalogue)

        def forget(kind: str, msisdn: str) -> None:
            if "cache" in self.__dict__:
                self.cache.invalidate(msisdn)

        accounts.listeners.append(forget)
        return accounts

    # --- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close what was opened; the bus (if any) first, it flushes on the loop."""
        if "bus" in self.__dict__ and not self._closed:
            await self.bus.close()
        self.close()

    def close(self) -> None:
        """Close what was opened, once (without a bus, or after `aclose` closed it)."""
        if self._closed:
            return
        self._closed = True
        if self._follower is not None:
            self._follower.stop()
        opened = self.__dict__
        if "cache" in opened:
            close = getattr(opened["cache"], "close", None)  # Hazelcast holds a client
            if close is not None:
                close()
        if "store" in opened:
            opened["store"].close()
        if "records" in opened:
            opened["records"].close()


def shared_api_key(settings: Settings) -> str:
    """The key the OCS and its gateways share across processes: no start without one (a made-up
    key would be a DGW that cannot charge, or an OCS nobody can reach)."""
    if settings.ocs_api_key is None:
        raise ConfigurationError(
            "set CELLCELLY_OCS_API_KEY (at least 16 characters, the same for the OCS and every DGW; e.g."
            " from a Kubernetes Secret). `cellcelly run` makes one itself."
        )
    return settings.ocs_api_key.get_secret_value()


def open_backends(settings: Settings) -> Backends:
    """Backends with the record, the catalogue and the balance store open now (what the OCS, the
    seed and reconcile commands, and tests want before the first request)."""
    backends = Backends(settings)
    try:
        backends.catalogue  # noqa: B018 - opens the record and starts following it
        backends.store  # noqa: B018
    except BaseException:
        backends.close()
        raise
    return backends


def build_store(settings: Settings) -> BalanceStore:
    if settings.balance_store == "embedded":
        return EmbeddedBalanceStore(
            settings.data_dir / "balances",
            fsync=settings.balance_fsync,
            compact_bytes=settings.balance_snapshot_min_mib * 1024 * 1024,
            checkpoint_cpu_share=settings.balance_checkpoint_cpu_share,
        )
    if settings.balance_store == "voltdb":
        return _voltdb_store(settings)
    raise ValueError(f"unknown balance store {settings.balance_store!r}")


def patiently(what: str, open_: Callable[[], T], wait: float, *retry_on: type[BaseException]) -> T:
    """`open_()`, tried again every 2 s for `wait` seconds while it raises one of `retry_on`: a
    stack's pods start together, and a back end not answering yet is no reason to crash-loop."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return open_()
        except retry_on as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("waiting for %s", what, extra={"error": str(exc)[:300]})
            time.sleep(2.0)


def procedures_jar(settings: Settings) -> Path | None:
    """The stored procedures to load into a VoltDB without the schema: the configured jar, else the
    one packaged beside the DDL (scripts/images.sh build puts it there), else none."""
    if settings.voltdb_procedures_jar:
        jar = Path(settings.voltdb_procedures_jar)
        if not jar.is_file():
            raise ConfigurationError(f"CELLCELLY_VOLTDB_PROCEDURES_JAR: no file {jar}")
        return jar
    from cellcelly.adapters.balance_voltdb import SCHEMA_DIR

    packaged = Path(str(SCHEMA_DIR / "procedures.jar"))
    return packaged if packaged.is_file() else None


def _voltdb_store(settings: Settings) -> BalanceStore:
    from cellcelly.adapters.balance_voltdb import (
        VoltBalanceStore,
        VoltSchemaMissing,
        VoltUnavailable,
        ensure_schema,
    )

    servers, user = settings.voltdb_servers, settings.voltdb_username
    password = settings.voltdb_password.get_secret_value()
    jar = procedures_jar(settings)

    def opened() -> VoltBalanceStore:
        try:
            return VoltBalanceStore(servers, username=user, password=password)
        except VoltSchemaMissing:
            if jar is None:
                raise
            try:  # every starting process may try; one loads it, the others see it there or wait
                ensure_schema(servers, jar, username=user, password=password)
            except StoreError as exc:
                log.warning("VoltDB schema: another process may be loading it", extra={"error": str(exc)})
            return VoltBalanceStore(servers, username=user, password=password)

    return patiently("VoltDB", opened, settings.startup_wait_seconds, VoltUnavailable, VoltSchemaMissing)


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


def build_cache(
    settings: Settings,
    loader: Callable[[str], SubscriberInfo | None],
    aloader: Callable[[str], Awaitable[SubscriberInfo | None]] | None = None,
) -> SubscriberCache:
    if settings.cache == "hazelcast":
        from cellcelly.adapters.cache_hazelcast import HazelcastCache

        members = [m.strip() for m in settings.hazelcast_members.split(",") if m.strip()]
        return HazelcastCache(
            loader,
            aloader=aloader,
            members=members,
            cluster_name=settings.hazelcast_cluster,
            username=settings.hazelcast_username,
            password=settings.hazelcast_password.get_secret_value(),
        )
    from cellcelly.adapters.cache_embedded import EmbeddedCache

    return EmbeddedCache(loader, aloader=aloader)


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
