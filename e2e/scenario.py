"""The end-to-end scenario, written once against an abstract running stack.

A subscriber signs up through the self-care API, Diameter traffic from the project's own traffic
generator is charged to them, one component is killed and must come back with nothing lost, new
traffic is charged again, and the stack is deleted. `StackEndpoint` is all the scenario knows of
where the stack runs: a kind cluster (kind_stack.py) or the embedded stack of `cellcelly run`
(local_stack.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)

SERVICES = ("voice", "sms", "data")


class StackEndpoint(Protocol):
    """Where a running stack answers, and the two things only its platform can do to it."""

    @property
    def mw_url(self) -> str:
        """Base URL of the self-care API (the ingress on kind), e.g. http://127.0.0.1:8080."""
        ...

    @property
    def ocs_url(self) -> str:
        """Base URL of the OCS's HTTP API (its /healthz, /readyz)."""
        ...

    @property
    def diameter(self) -> tuple[str, int]:
        """host, port of the Diameter gateway (DGW)."""
        ...

    def kill_and_heal(self) -> str:
        """Kill one component the hard way and return once it is serving again; says what was done."""
        ...

    def delete(self) -> None:
        """Delete the stack and return once it is gone (raises when something is left behind)."""
        ...


@dataclass(frozen=True)
class Usage:
    """What a balance says was consumed: the wallet (kuruş) and each allowance's used units."""

    wallet_kurus: int
    used: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, balance: dict[str, Any]) -> Usage:
        used = {a["service"]: int(a["used"]) for a in balance["allowances"]}
        return cls(int(balance["wallet"]["kurus"]), used)

    def moved_from(self, before: Usage) -> bool:
        """True when this balance shows more consumption than `before` (and never less)."""
        if self.wallet_kurus > before.wallet_kurus or any(
            self.used.get(s, 0) < before.used.get(s, 0) for s in SERVICES
        ):
            raise AssertionError(f"balance went backwards: {before} -> {self}")
        return self.wallet_kurus < before.wallet_kurus or any(
            self.used.get(s, 0) > before.used.get(s, 0) for s in SERVICES
        )


@dataclass
class Subscriber:
    msisdn: str
    password: str
    first_name: str = "Çağrı"
    last_name: str = "Öztürk"

    @classmethod
    def fresh(cls) -> Subscriber:
        """A new MSISDN (10 digits starting with 5, not the demo's) and a password with Turkish letters."""
        msisdn = "59" + "".join(secrets.choice("0123456789") for _ in range(8))
        return cls(msisdn, f"Şifre-{secrets.token_hex(4)}-Ğü")


class SelfCare:
    """The subscriber's side of the MW API: sign up, log in, read the balance."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def _expect(self, response: httpx.Response, status: int) -> Any:
        if response.status_code != status:
            raise AssertionError(
                f"{response.request.method} {response.request.url.path}: expected {status}, "
                f"got {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def package_code(self) -> str:
        items = self._expect(self.http.get("/api/v1/packages"), 200)["items"]
        if not items:
            raise AssertionError("the catalogue offers no package to sign up with")
        return str(items[0]["code"])

    def register(self, sub: Subscriber) -> str:
        body = {
            "firstName": sub.first_name,
            "lastName": sub.last_name,
            "msisdn": sub.msisdn,
            "email": f"e2e.{sub.msisdn}@example.com",
            "password": sub.password,
            "securityKey": "kedi-çiçek",
            "package": self.package_code(),
        }
        answer = self._expect(self.http.post("/api/v1/auth/register", json=body), 201)
        if answer["msisdn"] != sub.msisdn:
            raise AssertionError(f"registered {answer['msisdn']}, asked for {sub.msisdn}")
        return body["package"]

    def login(self, sub: Subscriber) -> None:
        body = {"msisdn": sub.msisdn, "password": sub.password, "rememberMe": False}
        self.token = self._expect(self.http.post("/api/v1/auth/login", json=body), 200)["accessToken"]

    def balance(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        return dict(self._expect(self.http.get("/api/v1/me/balance", headers=headers), 200))


def wait_ready(url: str, timeout: float = 90.0, alive: Any = None) -> None:
    """Poll `url` (a /readyz) until it answers 200; `alive()` returning False fails at once."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise AssertionError(f"the process serving {url} died while starting")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout}s: {last}")


def cellcelly_command() -> list[str]:
    """The `cellcelly` console script beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("cellcelly")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cellcelly")
    if found is None:
        raise AssertionError("the cellcelly command is not installed (pip install -e .)")
    return [found]


def run_traffic(endpoint: StackEndpoint, msisdn: str, rate: int = 20, duration: int = 5) -> dict[str, Any]:
    """`cellcelly traffic` against the stack's DGW for one subscriber; its JSON report."""
    host, port = endpoint.diameter
    command = cellcelly_command() + [
        "traffic",
        *("--rate", str(rate), "--duration", str(duration), "--subscribers", "1"),
        *("--first-msisdn", msisdn, "--host", host, "--port", str(port), "--connections", "1", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"cellcelly traffic exited {done.returncode}: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    if report["answers"] == 0 or report["result_counts"].get("2001", 0) == 0:
        raise AssertionError(f"no request was charged: {report}")
    if report["sessions_aborted"] or report["timeouts"] or report["errors"]:
        # an aborted session leaves a reservation behind, and the balance would not stand still
        raise AssertionError(f"sessions aborted, timed out or failed: {report}")
    return report


def refused_unknown(endpoint: StackEndpoint, msisdn: str) -> dict[str, Any]:
    """Traffic for a subscriber nobody registered: every request answered, none charged."""
    host, port = endpoint.diameter
    command = cellcelly_command() + [
        "traffic",
        *("--rate", "10", "--duration", "1", "--subscribers", "1", "--first-msisdn", msisdn),
        *("--host", host, "--port", str(port), "--connections", "1", "--json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"cellcelly traffic exited {done.returncode}: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    if report["answers"] == 0 or report["timeouts"] or report["errors"]:
        raise AssertionError(f"an unknown subscriber's requests were not all answered: {report}")
    if "2001" in report["result_counts"] or "2001" in report["mscc_result_counts"]:
        raise AssertionError(f"an unknown subscriber was charged: {report}")
    return report


def settled_usage(care: SelfCare, timeout: float = 30.0) -> Usage:
    """The balance once two reads a second apart agree (where reads lag the charging, they settle)."""
    deadline = time.monotonic() + timeout
    last = Usage.of(care.balance())
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = Usage.of(care.balance())
        if now == last:
            return now
        last = now
    raise AssertionError(f"the balance did not settle within {timeout}s: last {last}")


def wait_moved(care: SelfCare, before: Usage, timeout: float = 30.0) -> Usage:
    """The settled balance, which must show consumption beyond `before`."""
    deadline = time.monotonic() + timeout
    while True:
        after = settled_usage(care, timeout)
        if after.moved_from(before):
            return after
        if time.monotonic() > deadline:
            raise AssertionError(f"traffic was answered but the balance did not move: {before} -> {after}")


@dataclass
class Outcome:
    """What the scenario saw, for the test's assertions and its log."""

    subscriber: str
    package: str
    signed_up: Usage
    after_traffic: Usage
    after_heal: Usage
    after_more_traffic: Usage
    healed: str
    refused: dict[str, Any]
    reports: list[dict[str, Any]]


def run_scenario(
    endpoint: StackEndpoint,
    rate: int = 20,
    duration: int = 5,
    before_delete: Callable[[Subscriber], None] | None = None,
) -> Outcome:
    """Sign up, charge, kill and heal, charge again, delete. Raises AssertionError on any failure.
    `before_delete`: what only some platforms can show, run with the signed-up subscriber last."""
    wait_ready(f"{endpoint.mw_url}/readyz")
    wait_ready(f"{endpoint.ocs_url}/readyz")
    sub = Subscriber.fresh()
    care = SelfCare(endpoint.mw_url)
    try:
        package = care.register(sub)
        care.login(sub)
        signed_up = Usage.of(care.balance())
        log.info("signed up %s on %s: %s", sub.msisdn, package, signed_up)

        stranger = str(int(sub.msisdn) + 1)  # never registered (a fresh 59... number is free)
        refused = refused_unknown(endpoint, stranger)
        log.info("unknown subscriber %s refused: %s", stranger, refused["result_counts"])

        first = run_traffic(endpoint, sub.msisdn, rate, duration)
        after_traffic = wait_moved(care, signed_up)
        log.info("traffic: %s answers; balance %s", first["answers"], after_traffic)

        healed = endpoint.kill_and_heal()
        wait_ready(f"{endpoint.mw_url}/readyz")
        wait_ready(f"{endpoint.ocs_url}/readyz")
        care.close()
        care = SelfCare(endpoint.mw_url)
        care.login(sub)  # the account (and its password hash) survived too
        after_heal = settled_usage(care)
        if after_heal != after_traffic:
            raise AssertionError(f"{healed}: balance changed across it: {after_traffic} -> {after_heal}")

        second = run_traffic(endpoint, sub.msisdn, rate, duration)
        after_more = wait_moved(care, after_heal)
        log.info("after %s: traffic charged again; balance %s", healed, after_more)
        if before_delete is not None:
            before_delete(sub)
    finally:
        care.close()
    endpoint.delete()
    return Outcome(
        sub.msisdn,
        package,
        signed_up,
        after_traffic,
        after_heal,
        after_more,
        healed,
        refused,
        [first, second],
    )
