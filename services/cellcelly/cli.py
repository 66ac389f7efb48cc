"""`cellcelly` command line: run the stack, seed it, migrate the system of record, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import sys
import time
from typing import TYPE_CHECKING

from pydantic import SecretStr

from cellcelly.logs import setup_logging
from cellcelly.ports.records import SubscriberRecord
from cellcelly.runtime import tune_gc
from cellcelly.settings import Settings

if TYPE_CHECKING:
    from cellcelly.wiring import Components

log = logging.getLogger("cellcelly")

DEMO = SubscriberRecord("5321234567", "Ayşe", "Yılmaz", "ayse.yilmaz@example.com", "active", "ANKARA")


def _out(text: str) -> None:
    """What the command says to the person running it (logs go to stderr, this to stdout)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def seed_demo(components: Components) -> bool:
    """Open the demo subscriber unless it exists; True when it was created now."""
    if components.store.get(DEMO.msisdn) is not None:
        return False
    if components.records.get_subscriber(DEMO.msisdn) is None:
        components.accounts.open(dataclasses.replace(DEMO, created_at=int(time.time())))
    else:  # on record, but the balance store was wiped: provision it again
        components.accounts.provision(DEMO.msisdn, DEMO.package)
    return True


async def _serve(settings: Settings) -> None:
    from cellcelly.stack import EmbeddedStack
    from cellcelly.wiring import build

    components = build(settings)
    created = seed_demo(components)
    stack = EmbeddedStack(components)
    await stack.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stack.request_stop)
    tune_gc()
    base = f"http://{settings.ocs_host}:{stack.ocs_port}"
    _out("CellCelly is running on embedded defaults (no Java, no cluster):")
    _out(f"  OCS charging API  {base}/nchf-convergedcharging/v3/chargingdata   (docs {base}/docs)")
    _out(f"  OCS health        {base}/healthz  {base}/readyz  metrics {base}/metrics")
    _out(f"  OCS wire (DGW)    {settings.ocs_host}:{stack.wire_port}")
    _out(
        f"  DGW Diameter Gy   {settings.dgw_host}:{stack.dgw_port}  (Origin-Host {settings.dgw_origin_host}, "
        f"realm {settings.diameter_realm})"
    )
    _out(f"  system of record  {settings.sor_url()}")
    _out(f"  balance store     embedded, journal in {settings.data_dir / 'balances'}")
    _out(f"  catalogue         {settings.catalogue_path()} (version {components.catalogue.current.version})")
    _out(
        f"  demo subscriber   {DEMO.msisdn}, package {DEMO.package}, wallet 100.00 TL"
        + (" (created now)" if created else " (already there)")
    )
    _out("  admin token       $CELLCELLY_ADMIN_TOKEN (Authorization: Bearer ...)")
    _out("Stop with Ctrl-C.")
    try:
        await stack.serve_forever()
    finally:
        await stack.stop()
        components.close()


def cmd_run(args: argparse.Namespace) -> int:
    if not os.environ.get("CELLCELLY_ADMIN_TOKEN"):
        # a fresh secret for this run only; it lives in the environment, never on disk
        os.environ["CELLCELLY_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        _out(f"Generated an admin token for this run: {os.environ['CELLCELLY_ADMIN_TOKEN']}")
    settings = Settings()
    if args.port:
        settings.ocs_port = args.port
    settings.admin_token = SecretStr(os.environ["CELLCELLY_ADMIN_TOKEN"])
    try:
        asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from cellcelly.wiring import build

    components = build(Settings())
    try:
        created = seed_demo(components)
    finally:
        components.close()
    _out(f"demo subscriber {DEMO.msisdn}: {'created' if created else 'already there'}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from cellcelly.adapters.sql import SqlRecords

    settings = Settings()
    records = SqlRecords(settings.sor_url())
    try:
        records.migrate()
    finally:
        records.close()
    _out(f"system of record at the newest schema: {settings.sor_url()}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from cellcelly.bench import main as bench_main

    return bench_main(args.rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cellcelly", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the stack on embedded defaults")
    run.add_argument("--port", type=int, default=0, help="OCS port (default from CELLCELLY_OCS_PORT or 8081)")
    run.set_defaults(fn=cmd_run)
    sub.add_parser("seed", help="create the demo subscriber").set_defaults(fn=cmd_seed)
    sub.add_parser("migrate", help="bring the system of record to the newest schema").set_defaults(
        fn=cmd_migrate
    )
    bench = sub.add_parser("bench", help="measure charging throughput and latency")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(fn=cmd_bench)
    args = parser.parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
