"""The README's "Try it" commands, pasted as a newcomer would: `cellcelly run` in one directory,
the README's shell blocks run by bash in that directory ("another terminal"), with nothing set in
the environment. Only the ports are rewritten (the stack runs on free ones, not 8080/8081/3868)
and the README's two placeholders filled (the demo password, the access token)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cellcelly_dev.devservers import free_port
from cellcelly_testing import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "Readme-Demo1"
SECURITY_KEY = "a1b2c3"
DEMO = "5321234567"


def sh_blocks(section: str) -> list[str]:
    """The ```sh blocks of one `## ` section of the README, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start : end if end > 0 else None], re.S)


def documents(output: str) -> list[Any]:
    """The JSON answers curl printed back to back."""
    decoder, found, at = json.JSONDecoder(), [], 0
    output = output.strip()
    while at < len(output):
        value, at = decoder.raw_decode(output, at)
        found.append(value)
        while at < len(output) and output[at].isspace():
            at += 1
    return found


@dataclass
class Terminal:
    """The second terminal: bash in the stack's directory, the README's ports mapped to ours."""

    cwd: Path
    ports: dict[str, int]

    def run(self, script: str, **fill: str) -> str:
        for old, new in self.ports.items():
            script = script.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        script = script.replace("cellcelly traffic ", f"cellcelly traffic --port {self.ports['3868']} ")
        for placeholder, value in fill.items():
            script = script.replace(f"<{placeholder}>", value)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCELLY_")}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{script}\nexited {done.returncode}: {done.stdout}\n{done.stderr}"
        return done.stdout


def start(cwd: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLCELLY_")}
    env |= {
        "CELLCELLY_MW_PORT": str(ports["8080"]),
        "CELLCELLY_OCS_PORT": str(ports["8081"]),
        "CELLCELLY_OCS_WIRE_PORT": str(ports["8082"]),
        "CELLCELLY_DGW_PORT": str(ports["3868"]),
        "CELLCELLY_IVR_PORT": str(free_port()),
        "CELLCELLY_DEMO_PASSWORD": PASSWORD,
        "CELLCELLY_DEMO_SECURITY_KEY": SECURITY_KEY,
    }
    out = cwd / f"run-{time.monotonic_ns()}.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [str(cwd / ".venv" / "bin" / "cellcelly"), "run"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, out.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{ports['8080']}/healthz", timeout=1).status_code == 200:
                if "Stop with Ctrl-C." in out.read_text():
                    return process, out
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"cellcelly run not up in 60 s:\n{out.read_text()[-3000:]}")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    """A directory like the clone's: `.venv` is this interpreter's environment (the README's
    `.venv/bin/cellcelly`), `data/` made by the stack."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    yield tmp_path


def test_the_try_it_commands_work_as_pasted_and_keep_their_secrets_across_a_restart(directory: Path) -> None:
    ports = {name: free_port() for name in ("8080", "8081", "8082", "3868")}
    terminal = Terminal(directory, ports)
    charging, traffic, cdrs = sh_blocks("Try it")[:3]
    process, out = start(directory, ports)
    try:
        answers = documents(terminal.run(charging))
        assert len(answers) == 4, answers
        call, release, sms, balance = answers
        assert call["multipleUnitInformation"][0]["grantedUnit"]["time"] == 120
        assert release["multipleUnitInformation"][0]["resultCode"] == "SUCCESS"
        assert sms["multipleUnitInformation"][0]["resultCode"] == "SUCCESS"
        assert balance["msisdn"] == DEMO and balance["wallet"] == "96.00"  # the SMS to Germany: 4 TL

        report = terminal.run(traffic)
        codes = dict(re.findall(r"(\d{4}): (\d+)", report.split("Result-Code", 1)[1].splitlines()[0]))
        assert set(codes) == {"2001"} and int(codes["2001"]) > 100, report  # no 5030: the range is open
        again = httpx.get(
            f"http://127.0.0.1:{ports['8081']}/admin/subscribers/{DEMO}/balance",
            headers={"Authorization": f"Bearer {(directory / 'data' / 'admin-token').read_text().strip()}"},
        ).json()
        assert again["wallet"] == "96.00" and again["buckets"] == balance["buckets"]  # load left it alone
        deadline = time.monotonic() + 20  # the records follow the charges through the outbox, bus, SF
        while "call-1#1#1" not in (csv_text := terminal.run(cdrs)):
            assert time.monotonic() < deadline, csv_text[-2000:]
            time.sleep(0.5)
        rows = {row["event_id"]: row for row in csv.DictReader(io.StringIO(csv_text))}
        call = rows["call-1#1#1"]
        assert (call["msisdn"], call["destination"], call["units"]) == (DEMO, "905551112233", "95")
        assert rows["sms-1#0#2"]["money_tl"] == "4.00" and rows["sms-1#0#2"]["destination"] == "4915112345678"
        login = {"msisdn": DEMO, "password": PASSWORD}
        access = httpx.post(f"http://127.0.0.1:{ports['8080']}/api/v1/auth/login", json=login).json()
    finally:
        stop_process(process, timeout=20)
    banner = out.read_text()
    assert "admin token       data/admin-token" in banner and "wallet 100.00 TL (created now)" in banner
    token = (directory / "data" / "admin-token").read_text()
    assert (directory / "data" / "admin-token").stat().st_mode & 0o777 == 0o600

    process, out = start(directory, ports)  # a restart: the same token, the wallet as it is now
    try:
        assert (directory / "data" / "admin-token").read_text() == token
        assert "wallet 96.00 TL (already there)" in out.read_text()
        balance = documents(terminal.run(charging.split("# the balance (admin API)")[1]))[0]
        assert balance["wallet"] == "96.00"
        mine = httpx.get(
            f"http://127.0.0.1:{ports['8080']}/api/v1/me/balance",
            headers={"Authorization": f"Bearer {access['accessToken']}"},
        )
        assert mine.status_code == 200, mine.text  # a login outlives the restart (the kept token secret)
    finally:
        stop_process(process, timeout=20)


def test_the_self_care_commands_work_as_pasted_and_forgot_password_works_on_a_laptop(
    directory: Path,
) -> None:
    ports = {name: free_port() for name in ("8080", "8081", "8082", "3868")}
    terminal = Terminal(directory, ports)
    block, vouchers = sh_blocks("Self-care: web, phone, SMS, IVR")[:2]
    login, balance = block.strip().split("\ncurl ", 1)
    mw = f"http://127.0.0.1:{ports['8080']}"
    process, _ = start(directory, ports)
    try:
        tokens = documents(terminal.run(login, **{"the demo password make run printed": PASSWORD}))[0]
        answer = documents(terminal.run("curl " + balance, accessToken=tokens["accessToken"]))[0]
        assert answer["msisdn"] == DEMO and answer["wallet"] == {"kurus": 10_000, "tl": "100.00"}

        # a package renewed from the wallet when it ends: chosen, listed, refused for a package not sold
        bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
        chosen = httpx.put(f"{mw}/api/v1/me/renewals/ANKARA", json={"renew": True}, headers=bearer)
        assert chosen.status_code == 200 and chosen.json() == {"package": "ANKARA", "renew": True}
        assert httpx.get(f"{mw}/api/v1/me/renewals", headers=bearer).json() == {"items": ["ANKARA"]}
        unknown = httpx.put(f"{mw}/api/v1/me/renewals/NOPE", json={"renew": True}, headers=bearer)
        assert unknown.status_code == 422 and unknown.json()["cause"] == "UNKNOWN_PACKAGE"
        httpx.put(f"{mw}/api/v1/me/renewals/ANKARA", json={"renew": False}, headers=bearer)
        assert httpx.get(f"{mw}/api/v1/me/renewals", headers=bearer).json() == {"items": []}

        # vouchers made by the command while the stack runs are redeemed through the MW, once
        codes = terminal.run(vouchers).split()
        assert len(codes) == 3 and len(set(codes)) == 3
        bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
        topped = httpx.post(f"{mw}/api/v1/me/topup", json={"voucher": codes[0]}, headers=bearer)
        assert topped.status_code == 200, topped.text
        assert topped.json()["wallet"]["tl"] == "150.00"
        again = httpx.post(f"{mw}/api/v1/me/topup", json={"voucher": codes[0]}, headers=bearer)
        assert again.status_code == 409, again.text

        # forgot password with no SMTP server and no SMSC: the code is on the mailbox page
        assert "Nothing sent yet" in httpx.get(f"{mw}/dev/mailbox").text
        forgot = httpx.post(f"{mw}/api/v1/auth/forgot", json={"msisdn": DEMO, "channel": "sms"})
        assert forgot.status_code in (200, 202), forgot.text
        deadline = time.monotonic() + 10
        while not (mail := httpx.get(f"{mw}/dev/mailbox.json").json()["items"]):
            assert time.monotonic() < deadline, "no reset code in the mailbox within 10 s"
            time.sleep(0.2)
        assert mail[0]["msisdn"] == DEMO
        (code,) = re.findall(r"\b(\d{6})\b", mail[0]["text"])
        assert code in httpx.get(f"{mw}/dev/mailbox").text  # the page a person reads shows it
        reset = httpx.post(
            f"{mw}/api/v1/auth/reset",
            json={"msisdn": DEMO, "code": code, "securityKey": SECURITY_KEY, "newPassword": "Yeni-Parola9"},
        )
        assert reset.status_code in (200, 204), reset.text
        relogin = httpx.post(f"{mw}/api/v1/auth/login", json={"msisdn": DEMO, "password": "Yeni-Parola9"})
        assert relogin.status_code == 200, relogin.text
        assert "/dev/mailbox" not in httpx.get(f"{mw}/api/openapi.json").text  # not part of the API
    finally:
        stop_process(process, timeout=20)


def test_only_make_run_has_the_mail_catcher(tmp_path: Path) -> None:
    """A deployed service (no CELLCELLY_MAIL_CATCHER) has no e-mail without SMTP and no mailbox page;
    with an SMTP host even the catcher's setting gives real e-mail."""
    from cellcelly.deploy.backends import Backends
    from cellcelly.notifier.channels import EmailChannel, Mailbox
    from cellcelly.settings import Settings

    assert Backends(Settings(data_dir=tmp_path)).email is None
    assert isinstance(Backends(Settings(data_dir=tmp_path, mail_catcher=True)).email, Mailbox)
    smtp = Settings(data_dir=tmp_path, mail_catcher=True, smtp_host="127.0.0.1")
    assert isinstance(Backends(smtp).email, EmailChannel)


def test_a_notifier_alone_needs_a_way_to_tell(tmp_path: Path) -> None:
    """`cellcelly notifier` tells by SMS, SMTP or (as `cellcelly run`'s child) the mail catcher's
    file; with none of them it refuses to start rather than drop every notice."""
    from cellcelly.deploy import notifier
    from cellcelly.deploy.backends import Backends
    from cellcelly.errors import ConfigurationError
    from cellcelly.settings import Settings

    with pytest.raises(ConfigurationError, match="CELLCELLY_SMTP_HOST"):
        notifier.alone(Settings(data_dir=tmp_path), Backends(Settings(data_dir=tmp_path)))
    caught = Settings(data_dir=tmp_path, mail_catcher=True)
    assert "-> e-mail" in notifier.alone(caught, Backends(caught)).describe()


async def test_the_mailbox_page_reads_only_the_files_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load on the load subscribers mails their notices too: the page reads the newest, not the file."""
    from cellcelly.notifier import channels
    from cellcelly.ports.records import SubscriberRecord

    monkeypatch.setattr(channels, "TAIL_BYTES", 600)
    mailbox = channels.Mailbox(tmp_path / "mailbox.jsonl", shown=5)
    who = SubscriberRecord("5320000001", "Trafik", "0001", "t@example.com")
    for i in range(50):
        await mailbox.send(who, f"notice {i}", "x" * 20)
    assert (tmp_path / "mailbox.jsonl").stat().st_size > 600 * 4
    assert [m["subject"] for m in mailbox.messages()] == [f"notice {i}" for i in range(49, 44, -1)]
