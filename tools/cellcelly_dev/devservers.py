"""Throwaway servers for tests and benchmarks: a PostgreSQL, a single-node Kafka and a single-node
VoltDB on this machine.

    with postgres_server() as url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/cellcelly
        ...
    with kafka_server() as bootstrap:   # "127.0.0.1:PORT"
        ...
    with voltdb_server() as servers:   # "127.0.0.1:PORT", the CellCelly schema loaded
        ...
    with voltdb_server(username="u", password="p") as servers:   # the same, security on
        ...

PostgreSQL uses the server binaries of the machine (`/usr/lib/postgresql/*/bin`, else `initdb` on
PATH): `initdb` into a temporary directory, `pg_ctl start` on 127.0.0.1 with a free port and a
private socket directory, fsync off. As root, the binaries run as the `postgres` OS user
(PostgreSQL refuses to run as root). Stopped (`pg_ctl stop -m fast`) and deleted on exit. With
`CELLCELLY_TEST_POSTGRES_URL` set, that server is used instead and nothing is started. Without
binaries, `PostgresUnavailable` is raised.

Kafka runs `scripts/kafka.sh fetch` and `scripts/kafka.sh start DIR PORT` of a source checkout
(Java 17+ and Maven needed; the jars are cached under ~/.cache/cellcelly); `KafkaUnavailable` is
raised when that is impossible.

VoltDB 10.1.1 the same way with `scripts/voltdb.sh` (fetch, jar, start, stop; Java 17+ with javac,
and Maven); the schema and the stored procedures are loaded by `balance_voltdb.ensure_schema`.
`VoltDBUnavailable` is raised when that is impossible. `voltdb_truncate` empties the tables, so
one server can serve many tests. Given a username, the server has security on and that one user
(an administrator: `VOLTDB_USERS` of the script), and the helpers log in as it.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

# re-exported: tests and the bench take it from here; one implementation, the one `make run` uses
from cellcelly.deploy.child import free_port as free_port

log = logging.getLogger(__name__)

ENV_URL = "CELLCELLY_TEST_POSTGRES_URL"
DATABASE = "cellcelly"
OS_USER = "postgres"
KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"
VOLTDB_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "voltdb.sh"


# --- PostgreSQL ----------------------------------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries (or no way to run them) on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name  # /usr/lib/postgresql/<version>/bin/initdb
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.os_user = pwd.getpwnam(OS_USER)
            except KeyError:
                raise PostgresUnavailable(f"running as root but there is no {OS_USER!r} OS user") from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root but `runuser` is missing")
        self.root = Path(tempfile.mkdtemp(prefix="cellcelly-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        self.port = 0
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}\n{done.stderr}\n{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> str:
        began = time.monotonic()
        self.sockdir.mkdir()
        if self.as_root:
            for path in (self.root, self.sockdir):
                os.chown(path, self.os_user.pw_uid, self.os_user.pw_gid)
        self._run("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
                  "-D", str(self.datadir))  # fmt: skip
        for attempt in range(3):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60",
                          "-o", options, "start")  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                log.warning("PostgreSQL did not start on port %d, retrying", self.port)
        self.started = True
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f"CREATE DATABASE {DATABASE}")
        log.info("PostgreSQL up on 127.0.0.1:%d in %.2fs", self.port, time.monotonic() - began)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database; raise PostgresUnavailable if impossible."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    server = ThrowawayPostgres()
    try:
        url = server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield url
    finally:
        server.stop()


# --- Kafka ---------------------------------------------------------------------------------------


class KafkaUnavailable(RuntimeError):
    """No way to run Kafka here (no Java, no Maven, no scripts/kafka.sh, the fetch failed)."""


def run_script(
    script: Path, error: type[Exception], *args: str, timeout: float, env: dict[str, str] | None = None
) -> None:
    """`bash scripts/X.sh ARGS...` (`env`: variables added to ours); a failure or a timeout raises
    `error` with the script's stderr."""
    name = f"scripts/{script.name} {args[0]}"
    try:
        done = subprocess.run(
            ["bash", str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{name} took more than {timeout:g} s") from exc
    if done.returncode != 0:
        raise error(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")


@contextmanager
def _scripted_server(
    script: Path, error: type[Exception], env: dict[str, str] | None = None
) -> Iterator[tuple[Path, int]]:
    """(work dir, port) of a server `script start DIR PORT` (`env` added) started on a free port in
    a fresh temporary directory; `script stop DIR` and the directory deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix=f"cellcelly-{script.stem}-"))
    server = root / "server"
    try:
        port = free_port()
        run_script(script, error, "start", str(server), str(port), timeout=150, env=env)
        yield root, port
    finally:
        try:
            run_script(script, error, "stop", str(server), timeout=60)
        except error as exc:
            log.warning("%s", exc)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def fetch_kafka() -> None:
    """Make sure the Kafka jars are in the cache (scripts/kafka.sh fetch), or raise KafkaUnavailable."""
    if not KAFKA_SCRIPT.exists():
        raise KafkaUnavailable(f"{KAFKA_SCRIPT} not found (a source checkout is needed)")
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaUnavailable(
                f"{tool} not found: Kafka needs a JDK 17+ and Maven (apt-get install maven)"
            )
    run_script(KAFKA_SCRIPT, KafkaUnavailable, "fetch", timeout=600)


@contextmanager
def kafka_server() -> Iterator[str]:
    """Yield the bootstrap "127.0.0.1:PORT" of a fresh single-node Kafka; stopped and deleted on exit."""
    fetch_kafka()
    began = time.monotonic()
    with _scripted_server(KAFKA_SCRIPT, KafkaUnavailable) as (_, port):
        log.info("kafka on 127.0.0.1:%d ready in %.2fs", port, time.monotonic() - began)
        yield f"127.0.0.1:{port}"


# --- VoltDB --------------------------------------------------------------------------------------


class VoltDBUnavailable(RuntimeError):
    """No way to run VoltDB here (no Java/javac/Maven, no scripts/voltdb.sh, the fetch failed)."""


def voltdb_missing() -> str | None:
    """Why VoltDB cannot run here, or None when it can (before anything is fetched)."""
    if not VOLTDB_SCRIPT.exists():
        return f"{VOLTDB_SCRIPT} not found (a source checkout is needed)"
    for tool, why in (("java", "a JDK 17+"), ("javac", "a JDK, not only a JRE"), ("mvn", "Maven")):
        if shutil.which(tool) is None:
            return f"{tool} not found: VoltDB needs {why} (apt-get install openjdk-17-jdk-headless maven)"
    try:
        import voltdbclient  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "voltdbclient is not installed (pip install -e '.[voltdb]')"
    return None


def fetch_voltdb() -> None:
    """Make sure the VoltDB jars are in the cache (scripts/voltdb.sh fetch), or raise VoltDBUnavailable."""
    missing = voltdb_missing()
    if missing:
        raise VoltDBUnavailable(missing)
    run_script(VOLTDB_SCRIPT, VoltDBUnavailable, "fetch", timeout=600)


def _wait_for_ping(port: int, deadline: float, username: str = "", password: str = "") -> None:
    from cellcelly.adapters.voltdb_blocking import VoltConnection

    problem = "no answer"
    while time.monotonic() < deadline:
        try:
            conn = VoltConnection("127.0.0.1", port, 5.0, username, password)
        except (OSError, RuntimeError) as exc:
            problem = str(exc)
        else:
            try:
                if conn.call("@Ping", []).status == 1:
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise VoltDBUnavailable(f"VoltDB on 127.0.0.1:{port} does not answer @Ping ({problem})")


@contextmanager
def voltdb_server(
    *, username: str = "", password: str = "", security_xml: str = "", schema: bool = True
) -> Iterator[str]:
    """Yield "127.0.0.1:PORT" of a fresh single-node VoltDB with the CellCelly schema and procedures
    loaded; stopped and deleted on exit. With `username`, security is on and `username`/`password`
    is its one user (an administrator); `security_xml` (deployment.xml's <security> and <users>, e.g.
    the operator's) replaces the ones the script would write, and `username`/`password` must be in it.
    `schema=False`: an empty database, as the operator's managed VoltDB starts."""
    from cellcelly.adapters.balance_voltdb import ensure_schema

    env = None
    if security_xml:
        env = {"VOLTDB_SECURITY_XML": security_xml}
    elif username:
        # VOLTDB_USERS is "name:password,...": a ',' (or a ':' in the name) would split it elsewhere
        if ":" in username or "," in username or "," in password or not password:
            raise ValueError("a VoltDB test user needs a name without ':' or ',' and a password without ','")
        env = {"VOLTDB_USERS": f"{username}:{password}"}
    fetch_voltdb()
    began = time.monotonic()
    with _scripted_server(VOLTDB_SCRIPT, VoltDBUnavailable, env) as (root, port):
        jar = root / "procedures.jar"
        run_script(VOLTDB_SCRIPT, VoltDBUnavailable, "jar", str(jar), timeout=120)
        _wait_for_ping(port, time.monotonic() + 60, username, password)
        servers = f"127.0.0.1:{port}"
        if schema:
            ensure_schema(servers, jar, username=username, password=password)
        log.info("voltdb on %s ready in %.2fs", servers, time.monotonic() - began)
        yield servers


def voltdb_truncate(servers: str, *, username: str = "", password: str = "") -> None:
    """Empty every CellCelly table (between tests: much cheaper than a new server)."""
    from cellcelly.adapters.balance_voltdb import parse_servers
    from cellcelly.adapters.voltdb_blocking import VoltConnection

    host, port = parse_servers(servers)[0]
    conn = VoltConnection(host, port, 30.0, username, password)
    try:
        for table in ("account", "account_session", "outbox"):
            response = conn.call("@AdHoc", [f"TRUNCATE TABLE {table};"])
            if response.status != 1:
                raise RuntimeError(f"TRUNCATE TABLE {table} failed: {response.statusString}")
    finally:
        conn.close()
