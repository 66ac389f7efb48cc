"""The DGW: the Diameter Gy server in front of a Gateway that charges through an `OcsClient`
(WireOcs or NoopOcs on its own, LocalOcs in the embedded stack)."""

from __future__ import annotations

from collections.abc import Sequence

from cellcelly.deploy.service import Group, Lifecycle, Service
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import OcsClient
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.peer import LocalPeer
from cellcelly.ports.cache import SubscriberCache
from cellcelly.settings import Settings


def dgw_peer(settings: Settings) -> LocalPeer:
    return LocalPeer(
        settings.dgw_origin_host,
        settings.diameter_realm,
        host_ip=settings.dgw_host if settings.dgw_host[0].isdigit() else "127.0.0.1",
        watchdog_interval=settings.dgw_watchdog_seconds,
    )


class Dgw(Group):
    def __init__(
        self, settings: Settings, ocs: OcsClient, cache: SubscriberCache | None, extra: Sequence[Service]
    ) -> None:
        local = dgw_peer(settings)
        self.ocs = ocs
        self.gateway = Gateway(local, ocs, cache)
        self.server = DgwServer.from_settings(settings, self.gateway, local)
        self.port = 0

        async def listen() -> None:
            self.port = await self.server.start(settings.dgw_host, settings.dgw_port)

        async def close() -> None:
            await self.server.stop()
            await ocs.close()

        super().__init__("dgw", [Lifecycle("diameter", listen, close), *extra])


def build(
    settings: Settings,
    ocs: OcsClient,
    *,
    cache: SubscriberCache | None = None,
    extra: Sequence[Service] = (),
) -> Dgw:
    """`extra`: services that run beside the gateway, started after it and stopped before it
    (e.g. a follower of account changes that sends RAR/ASR through `Dgw.gateway`)."""
    return Dgw(settings, ocs, cache, extra)
