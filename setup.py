"""The charging path compiled with mypyc, when asked (`CELLCELLY_COMPILE=1`); pure Python otherwise.

Why: on two cores the Diameter codec and the charging engine are most of a CCR's CPU, and pure
Python could not reach the gateway's and the OCS's targets (docs/performance-log.md,
"2026-12-03: the charging path compiled by mypyc"). mypyc compiles these typed modules
unchanged; where the extension is absent (no compiler, an install without CELLCELLY_COMPILE) the
same `.py` files run, and the tests run on both
(`tests/compiled/test_compiled.py`). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import setup

# the modules a CCR passes through in the DGW and the OCS: the pure ones (typed, mypy strict, no
# I/O), then the I/O ones: the OCS's wire server, the VoltDB store and its loop client, the DGW's
# peer, gateway, server and OCS client, the embedded store, its event bus and the outbox relay
# (their integration files run on the build too)
COMPILED = [
    "cellcelly/diameter/constants.py",
    "cellcelly/diameter/codec.py",
    "cellcelly/diameter/ccr.py",
    "cellcelly/diameter/doic.py",
    "cellcelly/diameter/avp_bytes.py",  # what the readers of a message's bytes share
    "cellcelly/diameter/cca_reader.py",  # the traffic generator reads each CCA from its bytes
    "cellcelly/domain/errors.py",
    "cellcelly/domain/limits.py",
    "cellcelly/domain/money.py",
    "cellcelly/domain/units.py",
    "cellcelly/domain/account.py",
    "cellcelly/domain/balance_summary.py",  # every balance query (web, SMS, IVR) summarises
    "cellcelly/domain/catalogue.py",
    "cellcelly/domain/charging.py",
    "cellcelly/codec.py",
    "cellcelly/dgw/gy.py",
    "cellcelly/dgw/ccr_reader.py",  # the gateway reads each CCR straight from its bytes
    "cellcelly/ocs/wire.py",
    "cellcelly/application/charging.py",
    "cellcelly/adapters/voltdb_wire.py",
    "cellcelly/ports/balance_store.py",
    "cellcelly/adapters/balance_voltdb.py",
    "cellcelly/diameter/peer.py",
    "cellcelly/dgw/overload.py",
    "cellcelly/dgw/gateway.py",
    "cellcelly/dgw/server.py",
    "cellcelly/dgw/ocs_client.py",
    "cellcelly/domain/msisdn.py",
    "cellcelly/adapters/balance_embedded.py",
    "cellcelly/adapters/balance_files.py",  # its outbox on every commit; the checkpointer's replay
    "cellcelly/adapters/bus_embedded.py",
    "cellcelly/application/relay.py",
    "cellcelly/ports/bus_records.py",
    "cellcelly/sf/sync.py",  # `make run`'s SF child shares the two cores with charging
    "cellcelly/adapters/sql/sqlite_bulk.py",
    "cellcelly/adapters/sql/usage_rows.py",
    "cellcelly/turn_writer.py",
    "cellcelly/timeouts.py",
    "cellcelly/traffic/generator.py",  # the bench's network: its CPU shares the two cores
]


def extensions() -> list[object]:
    if os.environ.get("CELLCELLY_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only a compiling build needs mypy (--no-build-isolation)

    paths = [f"services/{module}" for module in COMPILED]  # named from their packages' __init__.py
    # the project's mypy settings, less the check of sections for modules not compiled here
    options = ["--no-warn-unused-configs"]
    return list(mypycify([*options, *paths], opt_level="3", group_name="cellcelly_compiled"))


setup(ext_modules=extensions())
