"""The event bus contract on the embedded file bus; `other` is a second EmbeddedBus on the same
directory, as another process on the same data dir would open it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from event_bus_contract import EventBusContract

from cellcelly.adapters.bus_embedded import EmbeddedBus

pytestmark = [pytest.mark.contract, pytest.mark.timeout(60)]


class TestEmbeddedBus(EventBusContract):
    @pytest.fixture
    async def bus(self, tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
        bus = EmbeddedBus(tmp_path / "bus")
        yield bus
        await bus.close()

    @pytest.fixture
    async def other(self, tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
        bus = EmbeddedBus(tmp_path / "bus")
        yield bus
        await bus.close()

    @pytest.fixture
    def topic(self) -> str:
        return f"test.tail.{uuid.uuid4().hex[:8]}"
