"""Where messages go: a channel interface; e-mail over SMTP now, SMS with the self-care work."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Protocol

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
