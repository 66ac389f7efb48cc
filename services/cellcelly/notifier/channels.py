"""Where messages go: a channel interface; e-mail over SMTP now, SMS with the self-care work."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import orjson

from cellcelly.ports.records import SubscriberRecord


class Channel(Protocol):
    async def send(self, to: SubscriberRecord, subject: str, text: str) -> None:
        """Deliver or raise; the notifier retries what raised."""


class EmailChannel:
    def __init__(
        self, host: str, port: int, sender: str = "bildirim@cellcelly.local", timeout: float = 10.0
    ) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    async def send(self, to: SubscriberRecord, subject: str, text: str) -> None:
        if not to.email:
            raise ValueError(f"subscriber {to.msisdn} has no e-mail address")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to.email
        message["Subject"] = subject
        message.set_content(text, charset="utf-8")
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message)


TAIL_BYTES = 1 << 20  # what the mailbox page reads of the file: far more than `shown` messages


class Mailbox:
    """`make run`'s mail catcher: what would have been e-mailed, appended to a file of the data
    directory (one JSON object a line) instead; the MW lists it at /dev/mailbox. A laptop has no
    SMTP server, and without one neither a reset code nor a notice would reach anybody. Two
    processes append to it (`cellcelly run`'s MW and its notifier child): a line is one write to a
    file opened for appending, so theirs never interleave."""

    def __init__(self, path: Path, shown: int = 100) -> None:
        self.path, self.shown = path, shown
        self._lock = threading.Lock()

    async def send(self, to: SubscriberRecord, subject: str, text: str) -> None:
        entry = {
            "at": int(time.time()),
            "to": to.email,
            "msisdn": to.msisdn,
            "subject": subject,
            "text": text,
        }
        await asyncio.to_thread(self._append, orjson.dumps(entry) + b"\n")

    def _append(self, line: bytes) -> None:
        with self._lock, self.path.open("ab") as out:
            out.write(line)

    def messages(self) -> list[dict[str, Any]]:
        """The newest `shown` messages, newest first, read from the file's tail only (load on the
        load subscribers mails their notices here too: the file grows)."""
        try:
            with self.path.open("rb") as data:
                size = data.seek(0, 2)
                data.seek(max(0, size - TAIL_BYTES))
                lines = data.read().splitlines()
        except FileNotFoundError:
            return []
        if size > TAIL_BYTES:
            lines = lines[1:]  # the first may be cut
        return [orjson.loads(line) for line in reversed(lines[-self.shown :]) if line.strip()]
