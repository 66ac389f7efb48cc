"""The DGW: the Diameter Gy server in front of a Gateway that charges through an `OcsClient`
(WireOcs or NoopOcs on its own, LocalOcs in the embedded stack), and a follower of account changes
made by any process (the ledger topic, read whole: `application/changes.py`), so that whichever
replica holds a session sends its RAR after a top-up and its ASR after a suspension."""

from __future__ import annotations

from collections.abc import Sequence

from cellcelly.application.changes import ChangeFollower
from cellcelly.deploy.backends import Backends, shared_api_key
from cellcelly.deploy.service import Alone, Group, HttpService, Lifecycle, Service, Worker
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.metrics import metrics_app
from cellcelly.dgw.ocs_client import NoopOcs, OcsClient, WireOcs, endpoint_name
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.peer import LocalPeer
from cellcelly.ports.cache import SubscriberCache
from cellcelly.ports.event_bus import EventBus
from cellcelly.settings import Settings


def dgw_peer(settings: Settings) -> LocalPeer:
    return LocalPeer(
        settings.dgw_origin_host,
        settings.diameter_realm,
        host_ip=settings.dgw_host if settings.dgw_host[0].isdigit() else "127.0.0.1",
        watchdog_interval=settings.dgw_watchdog_seconds,
    )


def follower(bus: EventBus, gateway: Gateway) -> Worker:
    """Account changes from the bus to the gateway's one reaction (`Gateway.account_changed`:
    its cache forgotten, RAR or ASR)."""
    changes = ChangeFollower(bus, [gateway.account_changed])
    return Worker("account changes", changes.run, changes.stop, changes.close)


def cache_apart(backends: Backends) -> SubscriberCache | None:
    """The configured cache (`CELLCELLY_CACHE`) of a DGW in its own process, loading from the
    balance store every process reaches (VoltDB). None over the embedded store: its files are the
    OCS process's own, and the OCS answers an unknown MSISDN itself."""
    if backends.settings.balance_store == "embedded":
        return None
    return backends.cache


class Dgw(Group):
    def __init__(
        self,
        settings: Settings,
        ocs: OcsClient,
        bus: EventBus,
        *,
        cache: SubscriberCache | None = None,
        extra: Sequence[Service] = (),
        metrics: tuple[str, int] | None = None,
    ) -> None:
        local = dgw_peer(settings)
        self.ocs = ocs
        self.gateway = Gateway(local, ocs, cache, overload_delay=settings.dgw_overload_delay_ms / 1000)
        self.server = DgwServer.from_settings(settings, self.gateway, local)
        self.port = 0

        async def listen() -> None:
            self.port = await self.server.start(settings.dgw_host, settings.dgw_port)

        async def close() -> None:
            await self.server.stop()
            await self.gateway.close()
            await ocs.close()

        # the follower starts after the listener (nothing to tell before a session exists) and
        # stops before it; `extra` services run beside the gateway, started after it
        changes = follower(bus, self.gateway)
        parts: list[Service] = [Lifecycle("diameter", listen, close), changes, *extra]
        # its /metrics on a port of its own (`metrics`: host, port), never the Diameter one's
        self.metrics: HttpService | None = None
        if metrics is not None:
            self.metrics = HttpService("dgw metrics", metrics_app(self.gateway), *metrics)
            parts.append(self.metrics)
        super().__init__("dgw", parts)


build = Dgw  # the DGW: its gateway follows account changes on `bus`, whoever made them


def alone(settings: Settings, backends: Backends, *, noop: bool = False) -> Alone:
    """`cellcelly dgw`: charging through the OCS endpoints it is given with the shared key (or
    nothing, `noop`: the benchmark's baseline)."""
    endpoints = settings.ocs_endpoints() or [(settings.ocs_host, settings.ocs_wire_port)]
    client: OcsClient = NoopOcs() if noop else WireOcs(endpoints, api_key=shared_api_key(settings))
    target = "nothing (noop baseline)" if noop else ", ".join(endpoint_name(h, p) for h, p in endpoints)
    metrics = (
        (settings.dgw_metrics_host, settings.dgw_metrics_port) if settings.dgw_metrics_port >= 0 else None
    )
    service = build(settings, client, backends.bus, cache=cache_apart(backends), metrics=metrics)

    def describe() -> str:
        cache = f", subscriber cache {settings.cache}" if service.gateway.cache is not None else ""
        shown = ""
        if service.metrics is not None:
            shown = f", metrics http://{settings.dgw_metrics_host}:{service.metrics.port}/metrics"
        return f"DGW on {settings.dgw_host}:{service.port}, charging through {target}{cache}{shown}"

    return Alone(service, describe)
