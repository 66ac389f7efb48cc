"""The Diameter client the integration tests connect as: one identity, so an allowlist names it once."""

from __future__ import annotations

from cellcelly.diameter.peer import LocalPeer, PeerAllowlist

CLIENT = LocalPeer("pgw.test.local", "test.local", watchdog_interval=30)
PEERS = PeerAllowlist.parse("@test.local")  # CLIENT's realm may connect
