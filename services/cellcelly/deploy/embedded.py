"""The embedded stack, what `make run` starts and end-to-end tests drive: the same deployables as
the processes apart, on one event loop, sharing one `Backends`.

Only the joints differ: the DGW charges through the OCS in process (`LocalOcs`), the notifier
speaks through the SMS gateway's channel, the MW plays the IVR's prompt audio, the SF's and the
DGW's figures are on the OCS's /metrics. With `split` (what `cellcelly run` does unless
CELLCELLY_RUN_SPLIT=false) the DGW and the SF are child processes instead (`deploy/child.py` says
why), and so is the notifier when it tells by e-mail: the DGW charges over the OCS's wire, and the
DGW and the SF each serve their own /metrics. Account changes
reach the gateway the way they reach a DGW apart, through the bus (`deploy/dgw.py`'s follower), so
a change is acted on once however it was made: a top-up or a package re-authorises the
subscriber's cut-off sessions (RAR), a suspension aborts them (ASR).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.registry import Collector

from cellcelly.application.relay import OutboxRelay
from cellcelly.application.selfcare import SelfCare, StoreBalanceLookup
from cellcelly.deploy import dgw, ivr, mw, notifier, ocs, sf, sms
from cellcelly.deploy.backends import Backends
from cellcelly.deploy.child import Child, ChildrenUp, free_port
from cellcelly.deploy.service import Alone, Group, Health, Lifecycle, Service
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.metrics import DgwCollector
from cellcelly.dgw.ocs_client import LocalOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.domain.money import format_tl
from cellcelly.ivr.prompt import PromptAudio, tools_missing
from cellcelly.ivr.service import IvrService
from cellcelly.notifier.service import Notifier
from cellcelly.ports.cache import SubscriberCache
from cellcelly.ports.event_bus import EventBus
from cellcelly.ports.records import SubscriberRecord
from cellcelly.runtime import tune_gc
from cellcelly.settings import Settings
from cellcelly.sf.metrics import SfCollector
from cellcelly.sf.sync import SyncFunction
from cellcelly.sms.gateway import SmsGateway
from cellcelly.traffic.generator import TrafficConfig

log = logging.getLogger(__name__)
SF_NICE = 10  # the SF child's niceness over the parent's (see `_sf_child`)
# the SF child's SQLite page cache (MiB) unless CELLCELLY_SQLITE_CACHE_MIB says: its writes read
# the usage history index's leaves, one a subscriber, which outgrow SQLite's 2 MiB within a minute
# at 10,000 CCR/s (docs/performance-log.md, 2026-12-07)
SF_SQLITE_CACHE_MIB = 64
WIRE_SOCKET = "ocs-wire.sock"  # split: the OCS wire's Unix socket in the data directory
MAX_SOCKET_PATH = 108  # sun_path, with its terminating NUL (Linux)

DEMO = SubscriberRecord("5321234567", "Ayşe", "Yılmaz", "ayse.yilmaz@example.com", "active", "ANKARA")


@dataclass
class EmbeddedStack:
    """A Service: `start()` builds and starts the deployables in order, `stop()` in reverse."""

    backends: Backends
    before_serving: Callable[[EmbeddedStack], Awaitable[None]] | None = None  # e.g. seeding
    name: str = "embedded stack"
    split: bool = False  # the DGW, the SF (and the notifier) as child processes (`cellcelly run`'s default)
    ocs_port: int = 0
    wire_port: int = 0
    wire_socket: str = ""  # split: the wire's Unix socket, the DGW child's way in
    dgw_port: int = 0
    mw_port: int = 0
    ivr_port: int = 0
    sf_metrics_port: int = 0  # split: where the SF child serves its /metrics
    dgw_metrics_port: int = 0  # split: where the DGW child serves its /metrics
    gateway: Gateway | None = None
    dgw: DgwServer | None = None
    bus: EventBus | None = None
    cache: SubscriberCache | None = None
    notifier: Notifier | None = None
    relay: OutboxRelay | None = None
    sf: SyncFunction | None = None
    sms: SmsGateway | None = None
    ivr: IvrService | None = None
    selfcare: SelfCare | None = None
    deployables: list[Service] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)  # split: the deployables in processes apart
    _group: Group | None = None

    async def start(self) -> None:
        b = self.backends
        settings = b.settings
        services: list[Service] = []
        balances = StoreBalanceLookup(b.store)
        if settings.smsc_host:
            sms_gateway = sms.build(settings, balances, b.catalogue)
            self.sms = sms_gateway.gateway
            services.append(sms_gateway)
        # events: outbox -> bus (the OCS's relay) -> system of record (SF); notices to the subscriber
        self.bus = b.bus
        collectors: list[Collector] = []
        dgw_child: Child | None = None
        ocs_settings = self._ocs_settings(settings)
        self.wire_socket = ocs_settings.ocs_wire_socket
        channel = notifier.channel(self.sms.channel if self.sms is not None else None, b.email)
        if self.split:
            children = [self._sf_child(settings)]
            if channel is not None and self.sms is None:
                children.append(self._notifier_child(settings))
                channel = None  # told from there
            services.extend(children)
            # it charges over the OCS's wire, on the port bound once the OCS (below) has started
            dgw_child = self._dgw_child(settings, lambda: charging.wire_port, self.wire_socket)
            self.children = [dgw_child, *children]
            collectors.append(ChildrenUp(self.children))  # /readyz: the whole stack serves
        else:
            sync = sf.build(settings, b.bus, b.records, metrics=False)  # its figures: on the OCS's /metrics
            self.sf = sync.sf
            collectors.append(SfCollector(sync.sf))
            services.append(sync)
        if channel is not None:
            notices = notifier.build(settings, b.bus, b.records, b.notice_ledger, channel, b.catalogue)
            self.notifier = notices.notifier
            services.append(notices)
        self.cache = b.cache
        # the follower, not an AccountService listener: one path for changes made here or elsewhere
        gateway = None
        if not self.split:
            gateway = dgw.build(settings, LocalOcs(b.charging), b.bus, cache=self.cache)
            self.gateway, self.dgw = gateway.gateway, gateway.server
            collectors.append(DgwCollector(gateway.gateway))  # as the SF's: on the OCS's /metrics
            services.append(gateway)
        self.selfcare = mw.selfcare(
            settings,
            b.accounts,
            b.credentials,
            email=b.email,
            send_sms=self.sms.channel.send_sms if self.sms is not None else None,
        )
        if self.before_serving is not None:  # e.g. seeding: done before any HTTP client can be told "ready"
            hook = self.before_serving
            services.append(Lifecycle("before serving", lambda: hook(self), _nothing))
        charging = ocs.build(ocs_settings, b, collectors=collectors, relay_busy=None)
        self.relay = charging.relay
        services.append(charging)
        prompt = None
        calls: ivr.Ivr | None = None
        if settings.ivr_port >= 0 and not tools_missing():
            audio = PromptAudio(settings.ivr_voice, settings.ivr_speed)
            prompt = audio.wav  # the web's WAV is what callers hear (and shares their phrase cache)
            calls = ivr.build(settings, balances, audio)
            self.ivr = calls.ivr
            services.append(calls)
        elif settings.ivr_port >= 0:
            log.warning(
                "IVR off: %s not installed (apt-get install espeak-ng sox)", " and ".join(tools_missing())
            )
        token = settings.admin_token
        web = mw.build(
            settings,
            self.selfcare,
            admin_token=token.get_secret_value() if token else None,
            prompt_wav=prompt,
            email=b.email,
        )
        services.append(web)
        services.append(mw.renewer(settings, b.accounts, b.records))
        if dgw_child is not None:
            # the Diameter port opens last, once everything else serves and start-up's heap is
            # frozen (`tune_gc`): opened first, the first CCRs waited behind the MW's start and the
            # full collection before the banner (p99 105 ms in the first 6 s at 2,000 CCR/s)
            services.append(Lifecycle("start-up heap frozen", _frozen, _nothing))
            services.append(dgw_child)
        self.deployables = services
        self._group = Group(self.name, services)
        await self._group.start()
        self.wire_port, self.ocs_port = charging.wire_port, charging.port
        if gateway is not None:
            self.dgw_port = gateway.port
        self.mw_port, self.ivr_port = web.port, calls.port if calls is not None else 0

    def _sf_child(self, settings: Settings) -> Child:
        # a port of its own unless CELLCELLY_SF_METRICS_PORT names one (two stacks on one machine)
        chosen = "sf_metrics_port" in settings.model_fields_set and settings.sf_metrics_port >= 0
        self.sf_metrics_port = settings.sf_metrics_port if chosen else free_port(settings.sf_metrics_host)
        cache = SF_SQLITE_CACHE_MIB
        if "sqlite_cache_mib" in settings.model_fields_set:
            cache = settings.sqlite_cache_mib
        env = {
            **_child_env(settings),
            "CELLCELLY_SF_METRICS_PORT": str(self.sf_metrics_port),
            "CELLCELLY_SQLITE_CACHE_MIB": str(cache),
        }
        # its work can wait and charging's cannot: niced, it takes the cores only when charging
        # leaves them (at 10,000 CCR/s it needs ~15 µs of CPU a CCR, and catches up after a peak)
        return Child("sf", ["sf"], lambda: env, nice=SF_NICE)

    def _notifier_child(self, settings: Settings) -> Child:
        """Notices by e-mail (the mail catcher's file or SMTP) from a child of their own, niced as
        the SF: each is three to four trips to the record's threads and two committed writes, and
        in the parent their threads took ~10% of a core from charging by the third minute at
        10,000 CCR/s, when the load subscribers' allowances pass 80% and 100% (docs/performance-log.md).
        With an SMSC they stay in the parent, told through its SMPP bind (`notifier.alone` would
        bind again, and answer KALAN from a balance store this process owns)."""
        env = {**_child_env(settings), "CELLCELLY_MAIL_CATCHER": str(settings.mail_catcher).lower()}
        return Child("notifier", ["notifier"], lambda: env, nice=SF_NICE)

    def _ocs_settings(self, settings: Settings) -> Settings:
        """Split, the DGW child charges over a Unix socket in the data directory (`ocs_wire_socket`,
        unless one is set): a round trip costs the two processes ~40% less CPU than over TCP
        loopback. A data directory whose socket path would not fit (108 bytes) keeps TCP."""
        if not self.split or settings.ocs_wire_socket:
            return settings
        path = str((settings.data_dir / WIRE_SOCKET).absolute())
        if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
            log.info("OCS wire on TCP only: the data directory's path is too long for a Unix socket")
            return settings
        return settings.model_copy(update={"ocs_wire_socket": path})

    def _dgw_child(self, settings: Settings, wire_port: Callable[[], int], socket: str) -> Child:
        self.dgw_port = settings.dgw_port or free_port(settings.dgw_host)
        # its /metrics: the port asked for (CELLCELLY_DGW_METRICS_PORT, -1: none), else a free one
        chosen = "dgw_metrics_port" in settings.model_fields_set
        self.dgw_metrics_port = settings.dgw_metrics_port if chosen else free_port(settings.dgw_metrics_host)
        ocs_host = "127.0.0.1" if settings.ocs_host in ("0.0.0.0", "::", "") else settings.ocs_host
        key = settings.ocs_api_key.get_secret_value() if settings.ocs_api_key is not None else ""

        def env() -> dict[str, str]:
            return {
                **_child_env(settings),
                "CELLCELLY_DGW_PORT": str(self.dgw_port),
                "CELLCELLY_DGW_OCS_ENDPOINTS": socket or f"{ocs_host}:{wire_port()}",
                "CELLCELLY_DGW_ALLOWED_PEERS": settings.dgw_allowed_peers,
                "CELLCELLY_DGW_METRICS_PORT": str(self.dgw_metrics_port),
                "CELLCELLY_OCS_API_KEY": key,  # the one `cellcelly run` kept or was given
            }

        return Child("dgw", ["dgw"], env)

    async def stop(self) -> None:
        if self._group is not None:
            await self._group.stop()

    async def wait(self) -> None:
        if self._group is not None:
            await self._group.wait()

    def health(self) -> Health:
        return self._group.health() if self._group is not None else Health(False, "not started")


def _and_socket(path: str) -> str:
    return f" and {path} (the DGW child's)" if path else ""


_SHOWN = {"dgw": "DGW", "sf": "SF"}


def _and(names: Iterable[str]) -> str:
    *rest, last = names
    return f"{', '.join(rest)} and {last}" if rest else last


def _metrics_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/metrics" if port >= 0 else "off"


async def _nothing() -> None:
    pass


async def _frozen() -> None:
    tune_gc()


def _child_env(settings: Settings) -> dict[str, str]:
    """What a child of `cellcelly run` must see as its parent does (it inherits the rest of the
    environment): the data directory, absolute (the bus and the record are there)."""
    return {"CELLCELLY_DATA_DIR": str(settings.data_dir.resolve())}


def seed_demo(backends: Backends) -> bool:
    """Open the demo subscriber unless it exists; True when it was created now."""
    if backends.store.get(DEMO.msisdn) is not None:
        return False
    if backends.records.get_subscriber(DEMO.msisdn) is None:
        backends.accounts.open(dataclasses.replace(DEMO, created_at=int(time.time())))
    else:  # on record, but the balance store was wiped: provision it again
        backends.accounts.provision(DEMO.msisdn, DEMO.package)
    return True


def seed_traffic(backends: Backends, count: int) -> int:
    """Open `count` subscribers for `cellcelly traffic`'s default range unless its first one exists
    (a fresh data directory): load has numbers of its own and the demo subscriber stays the human's.
    Returns how many were opened now."""
    first = TrafficConfig().first_msisdn  # an instance: a compiled class holds descriptors
    if count == 0 or backends.records.get_subscriber(str(first)) is not None:
        return 0
    now = int(time.time())
    package = DEMO.package
    for i in range(count):
        msisdn = str(first + i)
        record = SubscriberRecord(
            msisdn, "Trafik", f"{i:04d}", f"traffic-{msisdn}@example.com", "active", package, now
        )
        backends.accounts.open(record)
    return count


async def seed_demo_login(selfcare: SelfCare) -> tuple[str, str] | None:
    """Sign the demo subscriber up on a fresh data directory: (password, security key), else None.

    Both come from CELLCELLY_DEMO_PASSWORD / CELLCELLY_DEMO_SECURITY_KEY, or are made now and shown
    once: no password is ever written in the code or on disk in the clear."""
    if (
        selfcare.store.get(DEMO.msisdn) is not None
        or selfcare.records.get_subscriber(DEMO.msisdn) is not None
    ):
        return None
    password = os.environ.get("CELLCELLY_DEMO_PASSWORD") or f"Demo-{secrets.token_hex(4)}A"
    key = os.environ.get("CELLCELLY_DEMO_SECURITY_KEY") or secrets.token_hex(3)
    await selfcare.register(
        DEMO.first_name, DEMO.last_name, DEMO.msisdn, DEMO.email, password, key, DEMO.package
    )
    return password, key


def alone(
    settings: Settings,
    backends: Backends,
    *,
    key_source: str = "$CELLCELLY_OCS_API_KEY",
    token_source: str = "$CELLCELLY_ADMIN_TOKEN",
) -> Alone:
    """`cellcelly run`: the whole stack in this process, the demo subscriber seeded before anything
    is served (`key_source`: where the OCS API key was taken from, for the banner)."""
    seeded: dict[str, Any] = {}

    async def seed(running: EmbeddedStack) -> None:
        assert running.selfcare is not None
        seeded["login"] = await seed_demo_login(running.selfcare)
        seeded["created"] = seed_demo(backends) or seeded["login"] is not None
        seed_traffic(backends, settings.traffic_subscribers)

    stack = EmbeddedStack(backends, before_serving=seed, split=settings.run_split)
    return Alone(stack, lambda: "\n".join(banner(stack, settings, key_source, token_source, **seeded)))


def banner(
    stack: EmbeddedStack,
    settings: Settings,
    key_source: str,
    token_source: str,
    *,
    created: bool = False,
    login: tuple[str, str] | None = None,
) -> list[str]:
    """What `cellcelly run` tells the person who started it: where everything is."""
    base = f"http://{settings.ocs_host}:{stack.ocs_port}"
    web = f"http://{settings.mw_host}:{stack.mw_port}"
    version = stack.backends.catalogue.current.version
    dgw_metrics = _metrics_url(settings.dgw_metrics_host, stack.dgw_metrics_port)
    sf_metrics = _metrics_url(settings.sf_metrics_host, stack.sf_metrics_port)
    lines = [
        "CellCelly is running on embedded defaults (no Java, no cluster):",
        f"  OCS charging API  {base}/nchf-convergedcharging/v3/chargingdata   (docs {base}/docs)",
        f"  OCS health        {base}/healthz  {base}/readyz  metrics {base}/metrics",
        f"  OCS wire (DGW)    {settings.ocs_host}:{stack.wire_port}" + _and_socket(stack.wire_socket),
        f"  OCS API key       {key_source}  (charging API and wire: Authorization: Bearer <the key>)",
        f"  DGW Diameter Gy   {settings.dgw_host}:{stack.dgw_port}  (Origin-Host "
        f"{settings.dgw_origin_host}, realm {settings.diameter_realm})",
        f"  DGW peers allowed {settings.dgw_allowed_peers or '(none)'}  ($CELLCELLY_DGW_ALLOWED_PEERS)",
        f"  system of record  {settings.sor_url_shown()}",
        (
            f"  processes         {_and(_SHOWN.get(c.name, c.name) for c in stack.children)} apart"
            f" (DGW metrics {dgw_metrics}, SF metrics {sf_metrics});"
            " CELLCELLY_RUN_SPLIT=false: one process"
            if stack.split
            else "  processes         one (CELLCELLY_RUN_SPLIT=false)"
        ),
        f"  balance store     embedded, journal in {settings.data_dir / 'balances'}",
        f"  catalogue         {settings.catalogue_path()} (version {version})",
        f"  demo subscriber   {DEMO.msisdn}, package {DEMO.package}, {_wallet(stack, DEMO.msisdn)}"
        + (" (created now)" if created else " (already there)"),
        f"  self-care web/PWA {web}/   API {web}/api/v1   (docs {web}/api/docs)",
    ]
    if settings.traffic_subscribers:
        first = TrafficConfig().first_msisdn  # an instance: a compiled class holds descriptors
        lines.append(
            f"  load subscribers  {first}-{first + settings.traffic_subscribers - 1}, package {DEMO.package}"
            "  (`cellcelly traffic` charges these by default; $CELLCELLY_TRAFFIC_SUBSCRIBERS)"
        )
    if login is not None:
        lines.append(
            f"  demo login        {DEMO.msisdn} / {login[0]}  (security key {login[1]}; shown only now)"
        )
    if stack.ivr is not None:
        lines.append(f"  IVR (SIP/UDP)     sip:{settings.ivr_number}@{settings.ivr_host}:{stack.ivr_port}")
        lines.append(
            f"  IVR callers from  {settings.ivr_trusted_peers or '(none)'}  ($CELLCELLY_IVR_TRUSTED_PEERS)"
        )
    if stack.sms is not None:
        lines.append(
            f"  SMS (SMPP)        SMSC {settings.smsc_host}:{settings.smsc_port}, "
            f"KALAN to {settings.sms_short_code}"
        )
    lines.append(f"  admin token       {token_source}  (admin APIs: Authorization: Bearer <the token>)")
    lines.append("Stop with Ctrl-C.")
    return lines


def _wallet(stack: EmbeddedStack, msisdn: str) -> str:
    """The subscriber's wallet as it is now (a restart after traffic shows what is left)."""
    account = stack.backends.store.get(msisdn)
    return "no balance" if account is None else f"wallet {format_tl(account.available_money())} TL"
