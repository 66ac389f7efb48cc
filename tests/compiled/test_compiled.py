"""The compiled charging path (setup.py, mypyc) passes every test the pure one passes.

The services image ships the compiled build; the rest of the suite runs the source tree as pure
Python. So here the whole unit tier runs again, in a child pytest, on the build `make compile`
makes: the codec's cross-checks (python-diameter, tshark), its fuzz and property tests, and the
charging engine's money invariants, each on the compiled modules. Then the integration files that
drive the compiled I/O modules (the OCS's wire server, the VoltDB store and its client, the
embedded store, its bus and the outbox relay, the DGW's peer, server and OCS client, the SF and
its bulk writes into SQLite) against real servers: a compiled function checks its arguments'
declared types at run time, which pure Python never does, so a stand-in or a library's object of
another type than declared fails only here (a test's slower charging service did, until the wire
server took an interface; uvloop's server gives a list where typeshed says tuple). The first test
is what makes the others mean anything: the child really imports the compiled modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellcelly_dev.compiled import build
from cellcelly_testing import DOWNLOADS, require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[2]
HOT = [
    "cellcelly.diameter.codec",
    "cellcelly.domain.charging",
    "cellcelly.dgw.gy",
    "cellcelly.dgw.ccr_reader",
    "cellcelly.diameter.avp_bytes",
    "cellcelly.diameter.cca_reader",
    "cellcelly.codec",
    "cellcelly.ocs.wire",
    "cellcelly.adapters.balance_voltdb",
    "cellcelly.adapters.voltdb_wire",
    "cellcelly.diameter.peer",
    "cellcelly.dgw.server",
    "cellcelly.dgw.ocs_client",
    "cellcelly.adapters.balance_embedded",
    "cellcelly.adapters.balance_files",
    "cellcelly.application.relay",
    "cellcelly.ports.bus_records",
    "cellcelly.sf.sync",
    "cellcelly.adapters.sql.sqlite_bulk",
    "cellcelly.adapters.sql.usage_rows",
    "cellcelly.turn_writer",
    "cellcelly.traffic.generator",
]
# the integration files through the compiled I/O modules (real VoltDB; Diameter peers; the wire)
ON_SERVERS = [
    "tests/contract/test_balance_embedded.py",
    "tests/contract/test_bus_embedded.py",
    "tests/integration/test_events_flow.py",
    "tests/contract/test_balance_voltdb.py",
    "tests/integration/test_voltdb_off_loop.py",
    "tests/integration/test_relay_voltdb.py",
    "tests/integration/test_ocs_wire_auth.py",
    "tests/integration/test_ocs_wire_limits.py",
    "tests/integration/test_ocs_failover_log.py",
    "tests/integration/test_dgw.py",
    "tests/integration/test_dgw_limits.py",
    "tests/integration/test_no_cycles.py",
    "tests/integration/test_diameter_wire.py",
    "tests/integration/test_diameter_edge.py",
    "tests/integration/test_traffic_generator.py",
    "tests/integration/test_run_split.py",  # `cellcelly run` and its children on the compiled build
    # the SF (`make run`'s child) and its bulk writes into SQLite
    "tests/integration/test_sf_poison.py",
    "tests/integration/test_sf_metrics.py",
    "tests/integration/test_records.py",
    "tests/integration/test_record_limits.py",
]


@pytest.fixture(scope="module")
def compiled() -> Path:
    require(shutil.which("gcc") is not None, "no C compiler (gcc) for the mypyc build: apt-get install gcc")
    return build(DOWNLOADS / "compiled")


def child_env(compiled: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(compiled), os.environ.get("PYTHONPATH", "")])}


def test_the_child_imports_the_compiled_modules(compiled: Path) -> None:
    probe = "import importlib, sys; print(*(importlib.import_module(m).__file__ for m in sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", probe, *HOT], env=child_env(compiled), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert len(files) == len(HOT)
    assert all(f.startswith(str(compiled)) and f.endswith(".so") for f in files), files


def run_tests(compiled: Path, *paths: str) -> None:
    """The child pytest (its environment ours: under CI=true a missing server fails it too)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsfE", "-x", *paths],
        cwd=ROOT,
        env=child_env(compiled),
        capture_output=True,
        text=True,
        timeout=1100,
    )
    tail = done.stdout[-12000:]  # room for a failing test's own report (a peer's log)
    assert done.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail


def test_the_unit_tier_passes_on_the_compiled_modules(compiled: Path) -> None:
    run_tests(compiled, "tests/unit")


def test_the_compiled_io_modules_pass_their_integration_tests(compiled: Path) -> None:
    run_tests(compiled, *ON_SERVERS)
