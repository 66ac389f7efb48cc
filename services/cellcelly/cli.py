"""`cellcelly` command line: run the stack or one service of it, seed it, migrate the system of record,
drive traffic. It only parses: what runs is built in `cellcelly.deploy`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from cellcelly.errors import ConfigurationError
from cellcelly.logs import setup_logging
from cellcelly.runtime import ask_for_slice, tune_gc
from cellcelly.settings import Settings

if TYPE_CHECKING:
    from cellcelly.deploy.service import Alone

log = logging.getLogger("cellcelly")


def _out(text: str) -> None:
    """What the command says to the person running it (logs go to stderr, this to stdout)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# `cellcelly <name>` runs cellcelly.deploy.<name>.alone(settings, backends) as its own process
SERVICES = {
    "ocs": "the OCS (HTTP API, wire transport, outbox relay)",
    "dgw": "the DGW (OCS endpoints from CELLCELLY_DGW_OCS_ENDPOINTS)",
    "sf": "the SF (event bus -> system of record)",
    "mw": "the self-care API and web UI",
    "sms": "the SMS gateway (SMPP ESME, KALAN)",
    "ivr": "the IVR (SIP/UDP, Turkish prompts)",
    "notifier": "the notifier (bus -> SMS or e-mail)",
}


async def _serve(alone: Callable[..., Alone], settings: Settings, **options: Any) -> None:
    """Build the deployable over this process's backends, run it until a signal, close the backends."""
    from cellcelly.deploy import run
    from cellcelly.deploy.backends import Backends
    from cellcelly.deploy.child import exit_with_parent

    exit_with_parent()  # a child of `cellcelly run` ends with it
    backends = Backends(settings)
    try:
        deployable = alone(settings, backends, **options)

        def ready() -> None:
            tune_gc()
            _out(deployable.describe())

        await run([deployable.service], ready=ready)
    finally:
        await backends.aclose()


def _loop(main: Coroutine[Any, Any, None]) -> None:
    """Every service runs on uvloop: the loop's own overhead is a visible share of a charge (a CCR,
    a wire request, a VoltDB round trip) and of an HTTP request."""
    import uvloop

    uvloop.run(main)


# the services on the charging path: a short scheduler slice (Settings.sched_slice_us); every other
# one asks for the kernel's default, which also undoes the slice a child of `cellcelly run` inherits
CHARGING = ("ocs", "dgw")


def cmd_service(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"cellcelly.deploy.{args.command}")
    options = {"noop": args.noop} if args.command == "dgw" else {}
    settings = Settings()
    ask_for_slice(settings.sched_slice_us if args.command in CHARGING else 0)
    try:
        _loop(_serve(module.alone, settings, **options))
    except ConfigurationError as exc:
        raise SystemExit(f"cellcelly {args.command}: {exc}") from None
    return 0


def _kept(
    current: SecretStr | None, env: str, data_dir: Path, name: str, min_length: int, what: str = ""
) -> tuple[SecretStr, str]:
    """`current` when the environment set it (CELLCELLY_`env`), else the secret kept in
    `data_dir/name` (a new one said so when it has a `what`); with where it came from."""
    from cellcelly.kept_secrets import kept_secret

    if current is not None:
        return current, f"$CELLCELLY_{env}"
    value, path, created = kept_secret(data_dir, name, min_length)
    if created and what:
        _out(f"Generated {what} in {path} (mode 0600, kept across restarts)")
    return SecretStr(value), str(path)


def cmd_run(args: argparse.Namespace) -> int:
    from cellcelly.kept_secrets import ADMIN_TOKEN_FILE
    from cellcelly.ocs.auth import KEY_FILE, MIN_LENGTH

    settings = Settings()
    ask_for_slice(settings.sched_slice_us)  # the OCS's process, before it starts a thread
    if args.port:
        settings.ocs_port = args.port
    # secrets the environment does not set are kept in the data directory (0600) across restarts,
    # so the README's commands read them in another terminal ($(cat data/admin-token)) and logins
    # and reset codes outlive a restart; the banner says where each came from
    data = settings.data_dir
    settings.mw_token_secret, _ = _kept(
        settings.mw_token_secret, "MW_TOKEN_SECRET", data, "mw-token-secret", 32
    )
    settings.admin_token, token_source = _kept(
        settings.admin_token, "ADMIN_TOKEN", data, ADMIN_TOKEN_FILE, 16, "an admin token"
    )
    settings.ocs_api_key, key_source = _kept(
        settings.ocs_api_key, "OCS_API_KEY", data, KEY_FILE, MIN_LENGTH, "an OCS API key"
    )
    if not settings.smtp_host:
        settings.mail_catcher = True  # reset codes and notices readable at the MW's /dev/mailbox
    if not settings.dgw_allowed_peers:
        # `make run` is for `cellcelly traffic`: its identity may connect, nobody else's
        from cellcelly.traffic.generator import TrafficConfig

        settings.dgw_allowed_peers = f"{(traffic := TrafficConfig()).origin_host}@{traffic.origin_realm}"
    if not settings.ivr_trusted_peers:
        # a softphone on this machine calls the IVR directly: its identity headers are believed
        settings.ivr_trusted_peers = "127.0.0.1"
    from cellcelly.deploy import embedded

    try:
        _loop(_serve(embedded.alone, settings, key_source=key_source, token_source=token_source))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from cellcelly.deploy.backends import open_backends
    from cellcelly.deploy.embedded import DEMO, seed_demo

    backends = open_backends(Settings())
    try:
        created = seed_demo(backends)
    finally:
        backends.close()
    _out(f"demo subscriber {DEMO.msisdn}: {'created' if created else 'already there'}")
    return 0


async def _reconcile(settings: Settings) -> str:
    from cellcelly.application.reconcile import reconcile
    from cellcelly.application.relay import OutboxRelay
    from cellcelly.deploy.backends import open_backends
    from cellcelly.sf.sync import SyncFunction

    backends = open_backends(settings)
    try:
        # first bring the record up to date: what is still in the outbox, then what is on the bus.
        # The configured bus and the SF's own group: a relay into any other bus would take events
        # out of the outbox that no SF ever writes to the record, and the rebuild would erase them.
        bus = backends.bus
        relay = OutboxRelay(backends.store, bus)
        sf = SyncFunction(bus, backends.records, group=settings.sf_group)
        while await relay.relay_once():
            pass
        while await sf.sync_once(timeout=0.1):
            pass
        await sf.close()
        report = reconcile(backends.store, backends.records, backends.catalogue.current.policy)
    finally:
        backends.close()
    done = f"{report.rebuilt} rebuilt, {report.unchanged} already right"
    return f"reconciled {report.subscribers} subscribers: {done}"


def _audit(settings: Settings) -> int:
    import orjson

    from cellcelly.application.reconcile import audit
    from cellcelly.deploy.backends import open_backends

    backends = open_backends(settings)
    try:
        found = audit(backends.store, backends.records)
    finally:
        backends.close()
    differ = [{"msisdn": m, "record": r, "store": s} for m, (r, s) in sorted(found.differ.items())]
    report = {"subscribers": found.subscribers, "outbox": found.outbox, "differ": differ}
    _out(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if found.settled_and_equal else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Rebuild the balance store from the system of record (with the stack stopped); with --check,
    compare them only (safe while it runs): exit 1 while a balance differs or events wait."""
    if args.check:
        return _audit(Settings())
    _out(asyncio.run(_reconcile(Settings())))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from cellcelly.adapters.sql import SqlRecords

    settings = Settings()
    records = SqlRecords(settings.sor_url())
    try:
        records.migrate()
    finally:
        records.close()
    _out(f"system of record at the newest schema: {settings.sor_url_shown()}")
    return 0


def cmd_vouchers(args: argparse.Namespace) -> int:
    """Make vouchers straight in the system of record (the stack may run: the MW reads them there),
    one code a line, or JSON; the codes are shown only now."""
    import orjson

    from cellcelly.application.selfcare import create_vouchers
    from cellcelly.deploy.backends import Backends
    from cellcelly.domain.errors import DomainError
    from cellcelly.domain.money import format_tl, parse_tl

    try:
        amount = parse_tl(args.amount)
    except DomainError as exc:
        sys.stderr.write(f"cellcelly vouchers: {exc}\n")
        return 2
    if amount <= 0 or not 1 <= args.count <= 10_000:
        sys.stderr.write("cellcelly vouchers: the amount must be positive and the count 1-10000\n")
        return 2
    backends = Backends(Settings())
    try:
        codes = create_vouchers(backends.credentials, amount, args.count, args.batch, int(time.time()))
    finally:
        backends.close()
    if args.json:
        items = [{"code": code, "amount": format_tl(amount)} for code in codes]
        _out(orjson.dumps({"items": items}, option=orjson.OPT_INDENT_2).decode())
    else:
        _out("\n".join(codes))
    return 0


def cmd_cdr_export(args: argparse.Namespace) -> int:
    """The usage of the UTC days --from .. --to (both included) as CDRs, from the system of record
    (safe while the stack runs: one read)."""
    from cellcelly.adapters.sql import SqlRecords
    from cellcelly.application.cdr import day_range, write

    try:
        start, end = day_range(args.first, args.last)
    except ValueError as exc:
        sys.stderr.write(f"cellcelly cdr export: {exc}\n")
        return 2
    records = SqlRecords(Settings().sor_url())
    try:
        events = records.usage_between(start, end)
        if args.out == "-":
            count = write(events, sys.stdout, args.format)
        else:
            with open(args.out, "w", encoding="utf-8", newline="") as out:
                count = write(events, out, args.format)
    finally:
        records.close()
    sys.stderr.write(f"cellcelly cdr export: {count} records\n")
    return 0


def cmd_traffic(args: argparse.Namespace) -> int:
    import orjson
    import uvloop

    from cellcelly.traffic.generator import ProgressPrinter, TrafficConfig, parse_mix, run_traffic

    try:
        config = TrafficConfig(
            host=args.host,
            port=args.port,
            rate=args.rate,
            duration=args.duration,
            subscribers=args.subscribers,
            first_msisdn=args.first_msisdn,
            connections=args.connections,
            mix=parse_mix(args.mix),
            doic=not args.no_doic,
        )
        if args.processes < 1:
            raise ValueError("--processes must be >= 1")
    except ValueError as exc:
        sys.stderr.write(f"cellcelly traffic: {exc}\n")
        return 2
    printer = ProgressPrinter(sys.stderr)
    tune_gc(young=False)  # the network: its collector's pauses would count as the path's latency
    try:
        if args.processes > 1:
            from cellcelly.traffic.processes import run_processes

            report = run_processes(config, args.processes, printer)
        else:
            report = uvloop.run(run_traffic(config, printer))
    except (OSError, TimeoutError) as exc:
        printer.close()
        sys.stderr.write(f"cellcelly traffic: cannot open Diameter to {args.host}:{args.port}: {exc!r}\n")
        return 1
    except KeyboardInterrupt:
        printer.close()
        return 130
    printer.close()
    if args.json:
        _out(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _out(report.render())
    return 0 if report.answers else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cellcelly", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the stack on embedded defaults")
    run.add_argument("--port", type=int, default=0, help="OCS port (default from CELLCELLY_OCS_PORT or 8081)")
    run.set_defaults(fn=cmd_run)
    for name, what in SERVICES.items():
        alone = sub.add_parser(name, help=f"run {what} alone")
        alone.set_defaults(fn=cmd_service)
        if name == "dgw":
            alone.add_argument(
                "--noop", action="store_true", help="answer without charging (benchmark baseline)"
            )
    sub.add_parser("seed", help="create the demo subscriber").set_defaults(fn=cmd_seed)
    vouchers = sub.add_parser("vouchers", help="make top-up vouchers (the codes are shown only now)")
    vouchers.add_argument("--amount", required=True, help="TL a voucher adds, e.g. 50 or 12.50")
    vouchers.add_argument("--count", type=int, default=1, help="how many (default 1)")
    vouchers.add_argument("--batch", default="", help="a name for the lot (default: made from the time)")
    vouchers.add_argument("--json", action="store_true", help="print the codes as JSON")
    vouchers.set_defaults(fn=cmd_vouchers)
    cdr = sub.add_parser("cdr", help="charging data records from the system of record")
    export = cdr.add_subparsers(dest="cdr_command", required=True).add_parser(
        "export", help="the usage of whole UTC days as CSV or JSON lines"
    )
    export.add_argument("--from", dest="first", required=True, help="the first UTC day, e.g. 2026-12-01")
    export.add_argument(
        "--to", dest="last", default=None, help="the last UTC day, included (default: --from)"
    )
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", default="-", help="a file to write (default: standard output)")
    export.set_defaults(fn=cmd_cdr_export)
    sub.add_parser("migrate", help="bring the system of record to the newest schema").set_defaults(
        fn=cmd_migrate
    )
    rec = sub.add_parser("reconcile", help="rebuild the balance store from the system of record")
    rec.add_argument(
        "--check",
        action="store_true",
        help="only compare every balance in the record with the store's (JSON; exit 1 on a difference)",
    )
    rec.set_defaults(fn=cmd_reconcile)
    traffic = sub.add_parser("traffic", help="drive the Diameter gateway with Gy sessions (CCR I/U/T/E)")
    traffic.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    traffic.add_argument("--port", type=int, default=3868, help="gateway port (default 3868)")
    traffic.add_argument("--rate", type=float, default=1000.0, help="sessions started per second")
    traffic.add_argument("--duration", type=float, default=10.0, help="seconds of starting sessions")
    traffic.add_argument("--subscribers", type=int, default=1000, help="MSISDNs to spread sessions over")
    traffic.add_argument("--first-msisdn", type=int, default=5320000000, help="the first subscriber")
    traffic.add_argument("--connections", type=int, default=4, help="Diameter connections to open")
    traffic.add_argument("--mix", default="40:40:20", help="weights voice:data:sms (default 40:40:20)")
    traffic.add_argument(
        "--processes",
        type=int,
        default=1,
        help="split the load over this many processes (one offered ~25,000 CCR/s on 2 cores; the"
        " report says when the generator, not the server, was the limit)",
    )
    traffic.add_argument(
        "--no-doic",
        action="store_true",
        help="neither say OC-Supported-Features nor hold back new sessions when a gateway reports"
        " an overload (RFC 7683; by default both)",
    )
    traffic.add_argument("--json", action="store_true", help="print the report as JSON")
    traffic.set_defaults(fn=cmd_traffic)
    args = parser.parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
