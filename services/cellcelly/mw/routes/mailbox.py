"""`make run`'s mail catcher, read: /dev/mailbox lists what would have been e-mailed (reset codes,
notices), newest first; /dev/mailbox.json the same as data. Only there when the catcher is on
(`CELLCELLY_MAIL_CATCHER`, set by `cellcelly run` without an SMTP host), never in a deployment,
and not in the API's document: it is a developer's page, not part of the API."""

from __future__ import annotations

import asyncio
import html
import time

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from cellcelly.notifier.channels import Mailbox
from cellcelly.web import json_response

ROW = "<article><h2>{subject}</h2><p class=meta>to {to} ({msisdn}), {at} UTC</p><pre>{text}</pre></article>"


def page(messages: list[dict[str, object]]) -> str:
    rows = "".join(
        ROW.format(
            subject=html.escape(str(m.get("subject", ""))),
            to=html.escape(str(m.get("to", ""))),
            msisdn=html.escape(str(m.get("msisdn", ""))),
            at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(str(m.get("at", 0))))),
            text=html.escape(str(m.get("text", ""))),
        )
        for m in messages
    )
    empty = "<p>Nothing sent yet.</p>" if not messages else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Mailbox – CellCelly</title>'
        "<style>body{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}"
        "article{border-bottom:1px solid #ddd;padding:.5rem 0}.meta{color:#666}pre{white-space:pre-wrap}"
        "</style></head><body><h1>Mailbox</h1><p>What <code>make run</code> would have e-mailed "
        "(no SMTP server is set), newest first. Reload to see new mail.</p>"
        f"{empty}{rows}</body></html>"
    )


def router(mailbox: Mailbox) -> APIRouter:
    r = APIRouter(prefix="/dev", include_in_schema=False)

    @r.get("/mailbox")
    async def mailbox_page() -> Response:
        return HTMLResponse(page(await asyncio.to_thread(mailbox.messages)))

    @r.get("/mailbox.json")
    async def mailbox_json() -> Response:
        return json_response({"items": await asyncio.to_thread(mailbox.messages)})

    return r
