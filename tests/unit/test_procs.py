"""Which process is which, from its command line: the bench's CPU a CCR names each process of a
topology, the helpers a service starts included (their CPU is the stack's too)."""

from __future__ import annotations

from cellcelly_dev.bench import cpu_before
from cellcelly_dev.procs import _command, _helper


def test_a_cellcelly_command_is_named_by_its_command() -> None:
    assert _command([b"/venv/bin/python", b"-m", b"cellcelly.cli", b"sf", b""]) == "sf"
    assert _command([b"/venv/bin/python", b"-m", b"cellcelly.cli"]) is None
    assert _command([b"/usr/bin/java", b"-jar", b"voltdb.jar"]) is None


def test_a_helper_is_named_by_its_module_and_only_a_cellcelly_one() -> None:
    argv = [b"python", b"-m", b"cellcelly.adapters.balance_checkpointer", b"/data/balances", b"0.25"]
    assert _helper(argv) == "balance_checkpointer"
    assert _helper([b"/venv/bin/python", b"-m", b"cellcelly.cli", b"run"]) is None  # a command, not a helper
    assert _helper([b"/venv/bin/python", b"-m", b"pytest"]) is None
    assert _helper([b"/venv/bin/python", b"-m"]) is None


def test_a_process_started_during_a_row_counts_from_its_start() -> None:
    """The checkpointer starts at the store's first snapshot, mid-row in a five-minute run: all of
    its CPU is the row's. One started again under another pid too; one gone is not counted."""
    cpu = {"bench": 1.0, "run": 5.0, "dgw": 4.0, "sf": 2.0}
    then = {"run": 10, "dgw": 11, "sf": 12}
    now = {"run": 10, "dgw": 13, "balance_checkpointer": 14}
    assert cpu_before(cpu, then, now) == {"run": 5.0, "dgw": 0.0, "balance_checkpointer": 0.0}
