"""The DGW listener: one PeerConnection per Diameter peer, all answered by one Gateway.

The edge towards the network: only allowed peers complete a capabilities exchange (CEA 3010
DIAMETER_UNKNOWN_PEER otherwise), a connection that sends no CER within `cer_timeout` is closed,
and connections beyond `max_connections` are closed as they arrive, so that neither silent
sockets nor a flood of them can use up the process's file descriptors and memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from cellcelly.dgw.gateway import Gateway
from cellcelly.diameter.peer import LocalPeer, PeerAllowlist, PeerConnection

if TYPE_CHECKING:
    from cellcelly.settings import Settings

log = logging.getLogger(__name__)


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed at once (RST), before it costs a PeerConnection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class DgwServer:
    def __init__(
        self,
        gateway: Gateway,
        local: LocalPeer,
        *,
        allowed: PeerAllowlist,
        cer_timeout: float = 10.0,
        max_connections: int = 512,
    ) -> None:
        self.gateway = gateway
        self.local = local
        self.allowed = allowed
        self.cer_timeout = cer_timeout
        self.max_connections = max_connections
        self.connections: set[PeerConnection] = set()
        self.server: asyncio.Server | None = None
        self.refused = 0  # connections closed because of the cap
        self._cap_logged = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, gateway: Gateway, local: LocalPeer) -> DgwServer:
        return cls(
            gateway,
            local,
            allowed=PeerAllowlist.parse(settings.dgw_allowed_peers),
            cer_timeout=settings.dgw_cer_timeout_seconds,
            max_connections=settings.dgw_max_connections,
        )

    def _protocol(self) -> PeerConnection:
        return PeerConnection(
            self.local,
            self.gateway,
            on_open=lambda c: log.info("diameter peer up", extra={"peer": c.remote_host}),
            on_close=self.connections.discard,
            admit=self.allowed,
            cer_timeout=self.cer_timeout,
            reader=self.gateway.read,
        )

    def _track(self) -> asyncio.Protocol:
        if len(self.connections) >= self.max_connections:
            self.refused += 1
            now = time.monotonic()
            if now - self._cap_logged >= 10:  # one line per 10 s, not one per refused connection
                self._cap_logged = now
                log.warning(
                    "diameter connection cap reached: new connections closed",
                    extra={"max_connections": self.max_connections, "refused": self.refused},
                )
            return _Refused()
        conn = self._protocol()
        self.connections.add(conn)
        return conn

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._track, host, port, reuse_address=True)
        self.gateway.watch()
        # uvloop's `sockets` is a list where typeshed says tuple: read untyped, since compiled code
        # checks the declared type at run time (mypyc)
        sockets: Any = getattr(self.server, "sockets")  # noqa: B009
        bound = sockets[0].getsockname()[1]
        log.info("dgw listening", extra={"host": host, "port": bound, "allowed_peers": str(self.allowed)})
        if not self.allowed.entries:
            log.warning(
                "no Diameter peer is allowed (CELLCELLY_DGW_ALLOWED_PEERS is empty): every CER is refused"
            )
        return int(bound)

    async def stop(self) -> None:
        """Disconnect every peer politely (DPR), then stop listening."""
        self.gateway.unwatch()
        if self.server is not None:
            self.server.close()
        await asyncio.gather(*(c.disconnect() for c in list(self.connections)), return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
