"""Helpers every test tier shares (importable by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop, fail under CI: a back end that can run here must run in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


class FakeClock:
    """A settable clock (epoch seconds) for services that take `clock=`."""

    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# every listening port of the embedded stack on an ephemeral one (tests run beside `make run`)
EPHEMERAL_PORTS = {"ocs_port": 0, "ocs_wire_port": 0, "dgw_port": 0, "mw_port": 0, "ivr_port": 0}
