"""`cellcelly` command line: run the stack, seed it, migrate the system of record, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from cellcelly.logs import setup_logging
from cellcelly.runtime import tune_gc
from cellcelly.settings import Settings

if TYPE_CHECKING:
    from cellcelly.deploy.backends import Backends

log = logging.getLogger("cellcelly")


def _out(text: str) -> None:
    """What the command says to the person running it (logs go to stderr, this to stdout)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@contextlib.asynccontextmanager
async def _backends(settings: Settings, *, now: bool = False) -> AsyncIterator[Backends]:
    """The process's backends, closed once when it ends (`now`: record, catalogue and store opened
    before anything is served)."""
    from cellcelly.deploy.backends import Backends, open_backends

    backends = open_backends(settings) if now else Backends(settings)
    try:
        yield backends
    finally:
        await backends.aclose()


async def _serve(settings: Settings, key_source: str = "$CELLCELLY_OCS_API_KEY") -> None:
    from cellcelly.deploy import run
    from cellcelly.deploy.embedded import DEMO, EmbeddedStack, seed_demo, seed_demo_login

    login: tuple[str, str] | None = None

    async def seed(running: EmbeddedStack) -> None:
        nonlocal login
        assert running.selfcare is not None
        login = await seed_demo_login(running.selfcare)

    async with _backends(settings, now=True) as backends:
        stack = EmbeddedStack(backends, before_serving=seed)

        def banner() -> None:
            created = seed_demo(backends) or login is not None
            tune_gc()
            base = f"http://{settings.ocs_host}:{stack.ocs_port}"
            _out("CellCelly is running on embedded defaults (no Java, no cluster):")
            _out(f"  OCS charging API  {base}/nchf-convergedcharging/v3/chargingdata   (docs {base}/docs)")
            _out(f"  OCS health        {base}/healthz  {base}/readyz  metrics {base}/metrics")
            _out(f"  OCS wire (DGW)    {settings.ocs_host}:{stack.wire_port}")
            _out(
                f"  OCS API key       {key_source}  (charging API and wire: Authorization: Bearer <the key>)"
            )
            _out(
                f"  DGW Diameter Gy   {settings.dgw_host}:{stack.dgw_port}  (Origin-Host "
                f"{settings.dgw_origin_host}, realm {settings.diameter_realm})"
            )
            _out(
                f"  DGW peers allowed {settings.dgw_allowed_peers or '(none)'}  "
                "($CELLCELLY_DGW_ALLOWED_PEERS)"
            )
            _out(f"  system of record  {settings.sor_url_shown()}")
            _out(f"  balance store     embedded, journal in {settings.data_dir / 'balances'}")
            _out(
                f"  catalogue         {settings.catalogue_path()} "
                f"(version {backends.catalogue.current.version})"
            )
            _out(
                f"  demo subscriber   {DEMO.msisdn}, package {DEMO.package}, wallet 100.00 TL"
                + (" (created now)" if created else " (already there)")
            )
            web = f"http://{settings.mw_host}:{stack.mw_port}"
            _out(f"  self-care web/PWA {web}/   API {web}/api/v1   (docs {web}/api/docs)")
            if login is not None:
                _out(
                    f"  demo login        {DEMO.msisdn} / {login[0]}  "
                    f"(security key {login[1]}; shown only now)"
                )
            if stack.ivr is not None:
                _out(f"  IVR (SIP/UDP)     sip:{settings.ivr_number}@{settings.ivr_host}:{stack.ivr_port}")
                _out(
                    f"  IVR callers from  {settings.ivr_trusted_peers or '(none)'}  "
                    "($CELLCELLY_IVR_TRUSTED_PEERS)"
                )
            if stack.sms is not None:
                _out(
                    f"  SMS (SMPP)        SMSC {settings.smsc_host}:{settings.smsc_port}, "
                    f"KALAN to {settings.sms_short_code}"
                )
            _out("  admin token       $CELLCELLY_ADMIN_TOKEN (Authorization: Bearer ...)")
            _out("Stop with Ctrl-C.")

        await run([stack], ready=banner)


async def _serve_ocs(settings: Settings) -> None:
    """The OCS alone: its HTTP API, the wire transport gateways use, and the outbox relay."""
    from cellcelly.deploy import ocs, run

    _required_api_key(settings, "ocs")
    async with _backends(settings, now=True) as backends:
        service = ocs.build(settings, backends)
        host = settings.ocs_host

        def banner() -> None:
            tune_gc()
            _out(
                f"OCS on http://{host}:{service.port}, wire {host}:{service.wire_port}, "
                f"relaying the outbox to the {settings.event_bus} event bus"
            )

        await run([service], ready=banner)


def _required_api_key(settings: Settings, command: str) -> str:
    """Across processes the OCS and its gateways must share a key: no start without one (a made-up key
    would be a DGW that cannot charge, or an OCS nobody can reach)."""
    if settings.ocs_api_key is None:
        raise SystemExit(
            f"cellcelly {command}: set CELLCELLY_OCS_API_KEY (at least 16 characters, the same for the OCS"
            " and every DGW; e.g. from a Kubernetes Secret). `cellcelly run` makes one itself."
        )
    return settings.ocs_api_key.get_secret_value()


async def _serve_sf(settings: Settings) -> None:
    """The SF alone: usage and ledger events from the bus into the system of record."""
    from cellcelly.deploy import run, sf

    async with _backends(settings) as backends:
        service = sf.build(settings, backends.bus, backends.records)
        metrics = ""
        if service.metrics is not None:
            metrics = f", metrics http://{settings.sf_metrics_host}:{settings.sf_metrics_port}/metrics"
        await run(
            [service],
            ready=lambda: _out(f"SF: {settings.event_bus} event bus -> {settings.sor_url_shown()}{metrics}"),
        )


async def _serve_dgw(settings: Settings, noop: bool) -> None:
    """The DGW alone, charging through the OCS endpoints it is given (or nothing, with --noop)."""
    from cellcelly.deploy import dgw, run
    from cellcelly.dgw.ocs_client import NoopOcs, OcsClient, WireOcs

    endpoints = settings.ocs_endpoints() or [(settings.ocs_host, settings.ocs_wire_port)]
    client: OcsClient = NoopOcs() if noop else WireOcs(endpoints, api_key=_required_api_key(settings, "dgw"))
    target = "nothing (noop baseline)" if noop else ", ".join(f"{h}:{p}" for h, p in endpoints)
    async with _backends(settings) as backends:
        service = dgw.build(settings, client, cache=dgw.cache_apart(backends))

        def banner() -> None:
            tune_gc()
            cache = f", subscriber cache {settings.cache}" if service.gateway.cache is not None else ""
            _out(f"DGW on {settings.dgw_host}:{service.port}, charging through {target}{cache}")

        await run([service], ready=banner)


async def _serve_sms(settings: Settings) -> None:
    """The SMS gateway alone: KALAN answered from the balance store it is configured with (VoltDB
    across processes)."""
    from cellcelly.application.selfcare import StoreBalanceLookup
    from cellcelly.deploy import run, sms

    if not settings.smsc_host:
        raise SystemExit(
            "cellcelly sms: set CELLCELLY_SMSC_HOST (and SMSC_PORT, SMSC_SYSTEM_ID, SMSC_PASSWORD)"
        )
    async with _backends(settings, now=True) as backends:
        service = sms.build(settings, StoreBalanceLookup(backends.store), backends.catalogue)
        await run(
            [service],
            ready=lambda: _out(
                f"SMS gateway: SMSC {settings.smsc_host}:{settings.smsc_port}, "
                f"KALAN to {settings.sms_short_code}"
            ),
        )


async def _serve_ivr(settings: Settings) -> None:
    """The IVR alone (SIP/UDP), speaking balances from the store it is configured with."""
    from cellcelly.application.selfcare import StoreBalanceLookup
    from cellcelly.deploy import ivr, run
    from cellcelly.ivr.prompt import PromptAudio, tools_missing

    if missing := tools_missing():
        raise SystemExit(
            f"cellcelly ivr: {' and '.join(missing)} not installed (apt-get install espeak-ng sox)"
        )
    async with _backends(settings, now=True) as backends:
        audio = PromptAudio(settings.ivr_voice, settings.ivr_speed)
        service = ivr.build(settings, StoreBalanceLookup(backends.store), audio)
        await run(
            [service],
            ready=lambda: _out(f"IVR on sip:{settings.ivr_number}@{settings.ivr_host}:{service.port} (UDP)"),
        )


async def _serve_notifier(settings: Settings) -> None:
    """The notifier alone: notices from the bus to subscribers, by SMS (with an SMSC) or e-mail."""
    from cellcelly.application.selfcare import StoreBalanceLookup
    from cellcelly.deploy import notifier, run, sms
    from cellcelly.deploy.service import Service

    if not settings.smsc_host and not settings.smtp_host:
        raise SystemExit("cellcelly notifier: set CELLCELLY_SMSC_HOST or CELLCELLY_SMTP_HOST")
    async with _backends(settings) as backends:
        services: list[Service] = []
        gateway = None
        if settings.smsc_host:  # the SMS channel: its own SMPP bind, KALAN answered too
            gateway = sms.build(settings, StoreBalanceLookup(backends.store), backends.catalogue)
            services.append(gateway)
        channel = notifier.channel(gateway.gateway.channel if gateway else None, backends.email)
        assert channel is not None  # one of the two is configured (checked above)
        services.append(
            notifier.build(
                backends.bus, backends.records, backends.notice_ledger, channel, backends.catalogue
            )
        )
        await run(
            services,
            ready=lambda: _out(
                f"notifier: {settings.event_bus} event bus -> {'SMS' if gateway else 'e-mail'}"
            ),
        )


async def _serve_mw(settings: Settings) -> None:
    """The self-care API and web UI alone. Its account changes reach the balance store it is
    configured with: across processes that is VoltDB (the embedded store belongs to one process)."""
    from cellcelly.deploy import mw, run

    if settings.balance_store == "embedded":
        log.warning("cellcelly mw on the embedded balance store: no other process sees its accounts")
    async with _backends(settings, now=True) as backends:
        selfcare = mw.selfcare(settings, backends.accounts, backends.credentials, email=backends.email)
        token = settings.admin_token
        service = mw.build(settings, selfcare, admin_token=token.get_secret_value() if token else None)
        await run(
            [service],
            ready=lambda: _out(f"MW (self-care API and web UI) on http://{settings.mw_host}:{service.port}/"),
        )


def _runner(serve: Callable[[Settings], Coroutine[Any, Any, None]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        asyncio.run(serve(Settings()))
        return 0

    return run


def cmd_mw(args: argparse.Namespace) -> int:
    asyncio.run(_serve_mw(Settings()))
    return 0


def cmd_ocs(args: argparse.Namespace) -> int:
    asyncio.run(_serve_ocs(Settings()))
    return 0


def cmd_sf(args: argparse.Namespace) -> int:
    asyncio.run(_serve_sf(Settings()))
    return 0


def cmd_dgw(args: argparse.Namespace) -> int:
    import uvloop

    uvloop.run(_serve_dgw(Settings(), args.noop))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not os.environ.get("CELLCELLY_ADMIN_TOKEN"):
        # a fresh secret for this run only; it lives in the environment, never on disk
        os.environ["CELLCELLY_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        _out(f"Generated an admin token for this run: {os.environ['CELLCELLY_ADMIN_TOKEN']}")
    settings = Settings()
    if args.port:
        settings.ocs_port = args.port
    settings.admin_token = SecretStr(os.environ["CELLCELLY_ADMIN_TOKEN"])
    if not settings.dgw_allowed_peers:
        # `make run` is for `cellcelly traffic`: its identity may connect, nobody else's
        from cellcelly.traffic.generator import TrafficConfig

        settings.dgw_allowed_peers = f"{TrafficConfig.origin_host}@{TrafficConfig.origin_realm}"
    if not settings.ivr_trusted_peers:
        # a softphone on this machine calls the IVR directly: its identity headers are believed
        settings.ivr_trusted_peers = "127.0.0.1"
    key_source = "$CELLCELLY_OCS_API_KEY"
    if settings.ocs_api_key is None:
        # kept in the data directory (0600) across restarts, so curl and tools can read it
        from cellcelly.ocs.auth import key_from_file

        key, path, created = key_from_file(settings.data_dir)
        settings.ocs_api_key = SecretStr(key)
        key_source = str(path)
        if created:
            _out(f"Generated an OCS API key in {path} (mode 0600, kept across restarts)")
    try:
        asyncio.run(_serve(settings, key_source))
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
    from cellcelly.adapters.bus_embedded import EmbeddedBus
    from cellcelly.application.reconcile import reconcile
    from cellcelly.application.relay import OutboxRelay
    from cellcelly.deploy.backends import open_backends
    from cellcelly.sf.sync import SyncFunction

    backends = open_backends(settings)
    try:
        # first bring the record up to date: what is still in the outbox, then what is on the bus
        bus = EmbeddedBus(settings.data_dir / "bus")
        relay, sf = OutboxRelay(backends.store, bus), SyncFunction(bus, backends.records)
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


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Rebuild the balance store from the system of record (with the stack stopped)."""
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
        )
    except ValueError as exc:
        sys.stderr.write(f"cellcelly traffic: {exc}\n")
        return 2
    printer = ProgressPrinter(sys.stderr)
    tune_gc()  # thousands of sessions in flight: the default GC thresholds halve the rate
    try:
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
    sub.add_parser("ocs", help="run the OCS alone (HTTP API, wire transport, outbox relay)").set_defaults(
        fn=cmd_ocs
    )
    sub.add_parser("sf", help="run the SF alone (event bus -> system of record)").set_defaults(fn=cmd_sf)
    sub.add_parser("mw", help="run the self-care API and web UI alone").set_defaults(fn=cmd_mw)
    for name, serve, what in (
        ("sms", _serve_sms, "the SMS gateway (SMPP ESME, KALAN)"),
        ("ivr", _serve_ivr, "the IVR (SIP/UDP, Turkish prompts)"),
        ("notifier", _serve_notifier, "the notifier (bus -> SMS or e-mail)"),
    ):
        sub.add_parser(name, help=f"run {what} alone").set_defaults(fn=_runner(serve))
    dgw = sub.add_parser("dgw", help="run the DGW alone (OCS endpoints from CELLCELLY_DGW_OCS_ENDPOINTS)")
    dgw.add_argument("--noop", action="store_true", help="answer without charging (benchmark baseline)")
    dgw.set_defaults(fn=cmd_dgw)
    sub.add_parser("seed", help="create the demo subscriber").set_defaults(fn=cmd_seed)
    sub.add_parser("migrate", help="bring the system of record to the newest schema").set_defaults(
        fn=cmd_migrate
    )
    sub.add_parser("reconcile", help="rebuild the balance store from the system of record").set_defaults(
        fn=cmd_reconcile
    )
    traffic = sub.add_parser("traffic", help="drive the Diameter gateway with Gy sessions (CCR I/U/T/E)")
    traffic.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    traffic.add_argument("--port", type=int, default=3868, help="gateway port (default 3868)")
    traffic.add_argument("--rate", type=float, default=1000.0, help="sessions started per second")
    traffic.add_argument("--duration", type=float, default=10.0, help="seconds of starting sessions")
    traffic.add_argument("--subscribers", type=int, default=1000, help="MSISDNs to spread sessions over")
    traffic.add_argument("--first-msisdn", type=int, default=5320000000, help="the first subscriber")
    traffic.add_argument("--connections", type=int, default=4, help="Diameter connections to open")
    traffic.add_argument("--mix", default="40:40:20", help="weights voice:data:sms (default 40:40:20)")
    traffic.add_argument("--json", action="store_true", help="print the report as JSON")
    traffic.set_defaults(fn=cmd_traffic)
    args = parser.parse_args(argv)
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
