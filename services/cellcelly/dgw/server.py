"""The DGW listener: one PeerConnection per Diameter peer, all answered by one Gateway."""

from __future__ import annotations

import asyncio
import logging

from cellcelly.dgw.gateway import Gateway
from cellcelly.diameter.peer import LocalPeer, PeerConnection

log = logging.getLogger(__name__)


class DgwServer:
    def __init__(self, gateway: Gateway, local: LocalPeer) -> None:
        self.gateway = gateway
        self.local = local
        self.connections: set[PeerConnection] = set()
        self.server: asyncio.Server | None = None

    def _protocol(self) -> PeerConnection:
        return PeerConnection(
            self.local,
            self.gateway,
            on_open=lambda c: log.info("diameter peer up", extra={"peer": c.remote_host}),
            on_close=self.connections.discard,
        )

    def _track(self) -> PeerConnection:
        conn = self._protocol()
        self.connections.add(conn)
        return conn

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._track, host, port, reuse_address=True)
        bound = self.server.sockets[0].getsockname()[1]
        log.info("dgw listening", extra={"host": host, "port": bound})
        return int(bound)

    async def stop(self) -> None:
        """Disconnect every peer politely (DPR), then stop listening."""
        if self.server is not None:
            self.server.close()
        await asyncio.gather(*(c.disconnect() for c in list(self.connections)), return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
