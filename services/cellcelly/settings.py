"""The one settings object. Every value comes from the environment (prefix CELLCELLY_) or a .env."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy import URL

DEFAULT_CATALOGUE = Path(__file__).parent / "catalogue" / "default.yaml"


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (a short OCS key, a password)
    model_config = SettingsConfigDict(
        env_prefix="CELLCELLY_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path("data")
    # `cellcelly run` only: subscribers opened on a fresh data directory for `cellcelly traffic`
    # (its default range, 5320000000 on), so load never touches the demo subscriber; 0: none
    traffic_subscribers: int = Field(default=1000, ge=0, le=100_000)
    # `cellcelly run` only: the DGW and the SF (and a notifier telling by e-mail) as child
    # processes (the charging path then has two cores, as the operator deploys it:
    # `deploy/child.py`); false: everything on one event loop
    run_split: bool = True
    # the CPU slice (µs) the charging processes ask Linux's scheduler for (6.12+; `cellcelly ocs`,
    # `dgw`, `run` and its DGW child): woken by a request, they wait less for a longer-sliced task
    # (the SF) to give a core up (`runtime.ask_for_slice`); the other services keep the kernel's
    # default. 0: the default for every process
    sched_slice_us: int = Field(default=200, ge=0, le=100_000)
    # the catalogue in force; created from the bundled seed catalogue when missing
    catalogue_file: Path | None = None

    # system of record: SQLite by default; postgresql+psycopg://... or oracle+oracledb://...
    database_url: str = ""
    # the login apart from the URL, so no character of a password needs URL-encoding (the operator sets
    # them from a Secret); when set they replace the URL's own user and password
    database_username: str = ""
    database_password: SecretStr = SecretStr("")

    # real-time balance store
    balance_store: Literal["embedded", "voltdb"] = "embedded"
    # how long a starting service waits for VoltDB and the record to answer (0: fail at once);
    # the operator sets it, since a stack's pods all start together
    startup_wait_seconds: float = Field(default=0.0, ge=0)
    # VoltDB servers "host:port,host:port" (client port), the schema loaded (balance_voltdb.ensure_schema)
    voltdb_servers: str = "127.0.0.1:21212"
    # the compiled stored procedures loaded into a VoltDB that has no schema yet; empty: the jar
    # packaged beside the DDL (images carry it: scripts/images.sh build), none: no loading
    voltdb_procedures_jar: str = ""
    # a VoltDB with security enabled: the user the services log in as (empty: no login)
    voltdb_username: str = ""
    voltdb_password: SecretStr = SecretStr("")
    balance_fsync: Literal["always", "interval", "never"] = "interval"
    # the embedded store snapshots once its journal passes this, or the last snapshot's size if larger
    balance_snapshot_min_mib: int = Field(default=256, ge=1)
    # the share of a core its checkpointer process uses at most at any moment, working a little at
    # a time (`runtime.CpuShare`); 1: as fast as it can
    balance_checkpoint_cpu_share: float = Field(default=0.25, gt=0, le=1)

    # event bus: the embedded durable log, or Kafka (bootstrap servers "host:port,host:port")
    event_bus: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # how to reach a secured Kafka: SASL (PLAIN or SCRAM) and/or TLS; a CA bundle in KAFKA_SSL_CAFILE is
    # trusted besides the system's when the file exists (a Secret's optional key mounted as a file)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = None
    # the SF's consumer group: every SF process of one deployment shares it
    sf_group: str = "cellcelly-sf"
    # a stand-alone SF (`cellcelly sf`) serves its Prometheus metrics (lag...) here; -1: off
    sf_metrics_host: str = "127.0.0.1"
    sf_metrics_port: int = 9102
    # the SF's batches: at most this many records, and after a smaller one a pause of up to this
    # long before the next poll, so that they gather what comes meanwhile (on SQLite a batch
    # writes each of its subscribers' pages of the usage history's index once:
    # docs/performance-log.md); the record is that much later. The whole pause only at 5,000
    # records/s (a whole linger fills a batch) or more, and never longer than a batch takes to
    # fill; shorter in proportion below (`sf.sync.linger_for`): 0.02 s at 10 records/s
    sf_batch: int = Field(default=50_000, gt=0)
    sf_linger_seconds: float = Field(default=10.0, ge=0)
    # an SQLite record's page cache a connection, MiB (0: SQLite's ~2 MiB); `cellcelly run` gives
    # its SF child SF_SQLITE_CACHE_MIB: its writes read the usage history index's leaves back
    sqlite_cache_mib: int = Field(default=0, ge=0)
    # failing this long without writing anything makes the SF stalled: /readyz 503, cellcelly_sf_stalled 1
    sf_stall_seconds: float = Field(default=30.0, gt=0)

    # lookup cache: in process, or Hazelcast members "host:port,host:port"
    cache: Literal["embedded", "hazelcast"] = "embedded"
    hazelcast_members: str = "127.0.0.1:5701"
    hazelcast_cluster: str = "cellcelly"
    # username/password credentials, only for members with security on (Hazelcast Enterprise): an
    # open-source member refuses a client that sends any
    hazelcast_username: str = ""
    hazelcast_password: SecretStr = SecretStr("")

    # notifier: e-mail over SMTP; off while no host is set
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_sender: str = "bildirim@cellcelly.local"
    # with no SMTP host: what would be e-mailed is kept in data_dir/mailbox.jsonl and listed by the MW
    # at /dev/mailbox (reset codes included), so `make run` (which turns it on) works on a laptop;
    # never for a deployment (the operator does not set it)
    mail_catcher: bool = False
    # how often the MW renews the packages subscribers chose to renew (their period ended)
    renewal_every_seconds: float = Field(default=60.0, gt=0)
    # a notice claimed by a notifier that died before telling it waits this long for another replica:
    # longer than a send can take (each SMTP/SMPP step times out within 10 s)
    notice_lease_seconds: int = Field(default=120, gt=0)

    # SMS: an SMPP 3.4 transceiver bound to an SMSC; off while no host is set
    smsc_host: str = ""
    smsc_port: int = 2775
    smsc_system_id: str = "cellcelly"
    smsc_password: SecretStr = SecretStr("")  # SMPP allows at most 8 characters
    smsc_system_type: str = ""
    smsc_enquire_link_seconds: float = 30.0
    sms_short_code: str = "5555"  # where subscribers send KALAN
    sms_sender: str = "5555"  # source of notices and codes (digits, or a name of at most 11 characters)

    # IVR: a SIP endpoint (UDP) that answers calls to IVR_NUMBER and speaks the balance
    # (needs espeak-ng and sox; off when they are missing, or with IVR_PORT=-1)
    ivr_host: str = "127.0.0.1"
    ivr_port: int = 5060
    ivr_number: str = "5555"
    ivr_voice: str = "tr"  # espeak-ng voice
    ivr_speed: int = 160  # words per minute
    ivr_advertise_host: str = ""  # the address put in SDP and Contact when it is not IVR_HOST (NAT)
    # SIP peers (addresses or networks, comma-separated) whose From/P-Asserted-Identity is believed;
    # INVITEs from elsewhere get 403. Empty: every call refused (`make run` trusts 127.0.0.1)
    ivr_trusted_peers: str = ""

    # MW: the self-care API and web UI (http://MW_HOST:MW_PORT)
    mw_host: str = "127.0.0.1"
    mw_port: int = 8080
    # signs access tokens and keys reset-code hashes; random per process when unset (tokens and
    # pending reset codes then die with the process): set it, and share it between MW replicas
    mw_token_secret: SecretStr | None = None
    mw_access_seconds: int = 900
    # argon2id cost for passwords and security keys: OWASP's recommended m=19 MiB, t=2, p=1 (about
    # 60 ms a hash on this project's machines; `make bench` measures it); raise it on faster ones
    mw_argon2_time_cost: int = 2
    mw_argon2_memory_kib: int = 19456
    mw_argon2_parallelism: int = 1
    mw_login_max_failures: int = 5
    mw_lockout_seconds: int = 900

    ocs_host: str = "127.0.0.1"
    ocs_port: int = 8081

    # the OCS's internal charging transport for gateways (length-prefixed orjson frames)
    ocs_wire_port: int = 8082
    # a Unix socket the wire also listens on (mode 0600), for a gateway on the same machine: a round
    # trip over it costs the two processes ~40% less CPU than over TCP loopback. `make run` puts
    # one in DATA_DIR for its DGW child; empty: TCP only
    ocs_wire_socket: str = ""
    # the shared secret that lets a caller charge: a DGW on the wire (auth frame), a client of the JSON
    # charging API (Authorization: Bearer). Unset, the OCS charges nobody; `cellcelly ocs`/`dgw` refuse
    # to start without it and `make run` keeps one in DATA_DIR/ocs-api-key (see ocs/auth.py)
    ocs_api_key: SecretStr | None = None

    # DGW (Diameter Gy/Ro)
    dgw_host: str = "127.0.0.1"
    dgw_port: int = 3868
    dgw_origin_host: str = "dgw.cellcelly.local"
    diameter_realm: str = "cellcelly.local"
    dgw_watchdog_seconds: float = 30.0
    # Diameter peers that may connect: "host", "host@realm" or "@realm", comma-separated, * and ?
    # as wildcards, "*" for any. Empty (the default): none. Diameter has no login of its own, so an
    # open gateway charges whoever reaches it; a closed one fails loudly at the first CER (3010 in
    # the peer's log, a warning in ours). `cellcelly run` allows its traffic generator.
    dgw_allowed_peers: str = ""
    # a connection must send its CER within this (RFC 6733 leaves it to us); then it is closed
    dgw_cer_timeout_seconds: float = Field(default=10.0, gt=0)
    # TCP connections to the DGW at most (each a file descriptor and buffers; peers are few)
    dgw_max_connections: int = Field(default=512, ge=1)
    # OCS endpoints for a stand-alone DGW, "host:port,host:port"; a Unix socket is its path (from "/",
    # as libpq's PGHOST); empty: the OCS in this process
    dgw_ocs_endpoints: str = ""
    # overload: when even the luckiest request of a 0.2 s window waited longer than this (its loop's
    # lateness and its charge), new sessions (CCR-I, CCR-E) are answered 3004 DIAMETER_TOO_BUSY while
    # sessions under way go on (`dgw/overload.py`); 0: never. Far above a healthy path's p99 (~10 ms)
    dgw_overload_delay_ms: float = Field(default=100.0, ge=0)
    # a stand-alone DGW's /metrics (`dgw/metrics.py`), on an HTTP port of its own, never the
    # Diameter one's Service (which the network reaches). -1 (the default): none, so that DGWs
    # started side by side on one machine need no port each; the operator's pods serve 9103,
    # `cellcelly run`'s DGW child a free port it prints
    dgw_metrics_host: str = "127.0.0.1"
    dgw_metrics_port: int = -1

    admin_token: SecretStr | None = Field(
        default=None, description="bearer token for /admin; admin is off without it"
    )

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("ocs_api_key", mode="before")
    @classmethod
    def _api_key(cls, value: object) -> object:
        """Surrounding whitespace dropped (a Secret made from a file keeps its newline); empty is unset;
        a short key is refused rather than trusted."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or not isinstance(raw, str):
            return raw
        raw = raw.strip()
        if not raw:
            return None
        if len(raw) < 16:
            raise ValueError("CELLCELLY_OCS_API_KEY needs at least 16 characters")
        return raw

    def catalogue_path(self) -> Path:
        return self.catalogue_file or self.data_dir / "catalogue.yaml"

    def ocs_endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of each endpoint; a Unix socket is (its path, 0)."""
        endpoints = []
        for item in filter(None, (p.strip() for p in self.dgw_ocs_endpoints.split(","))):
            if item.startswith("/"):
                endpoints.append((item, 0))
                continue
            host, _, port = item.rpartition(":")
            endpoints.append((host or "127.0.0.1", int(port)))
        return endpoints

    @cached_property
    def _sor(self) -> URL:
        """The record's URL, parsed once: the login from DATABASE_USERNAME/PASSWORD set in it (SQLite: a
        file has no login). Every user of the record (engine, migrator, logs) takes this value, so no
        layer parses or re-renders the text again (a re-render is where a password gets mis-quoted)."""
        from sqlalchemy import make_url  # lazily: the settings are imported where SQLAlchemy is not

        url = make_url(self.database_url or f"sqlite:///{self.data_dir / 'cellcelly.db'}")
        password = self.database_password.get_secret_value()
        if url.get_backend_name() == "sqlite" or not (self.database_username or password):
            return url
        return url.set(username=self.database_username or url.username, password=password or url.password)

    def sor_url(self) -> URL:
        return self._sor

    def sor_url_shown(self) -> str:
        """`sor_url()` fit for logs and terminals: the password masked."""
        return self._sor.render_as_string(hide_password=True)
