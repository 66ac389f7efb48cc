"""A small async Kubernetes API client over aiohttp, on the credentials kopf logged in with.

Only what the operator needs: get, list, create, merge-patch, delete. Never PUT (replace races with
other writers; the fake API server of the tests has none either).
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import tempfile
from typing import Any

import aiohttp
import kopf

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status


class UnknownCollection(ApiError):
    """The server does not serve this kind at all (a CRD not installed, e.g. the Prometheus Operator's)."""

    def __init__(self, path: str) -> None:
        super().__init__(404, f"no such collection: {path}")
        self.path = path


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    if not info.server.startswith("https"):
        return True
    ctx = ssl.create_default_context()
    if info.ca_path:
        ctx.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        data = info.ca_data if isinstance(info.ca_data, str) else info.ca_data.decode()
        ctx.load_verify_locations(cadata=_pem(data))
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert = _tempfile(info.certificate_data)
        key = _tempfile(info.private_key_data)
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _pem(data: str) -> str:
    return data if "BEGIN" in data else base64.b64decode(data).decode()


def _tempfile(data: str | bytes) -> str:
    text = _pem(data if isinstance(data, str) else data.decode())
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".pem") as f:
        f.write(text)
    return f.name


class Kube:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        headers = {"Accept": "application/json", "User-Agent": "cellcelly-operator"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        self._base = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info), limit=32),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any] | None:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            )
        async with self._session.request(method, self._base + path, data=data, headers=headers, **kw) as rsp:
            text = await rsp.text()
            if rsp.status == 404:
                return None
            if rsp.status >= 400:
                raise ApiError(rsp.status, text)
            result: dict[str, Any] = json.loads(text) if text else {}
            return result

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self._call("GET", path)

    async def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        """Items of a collection. A collection the server does not serve raises UnknownCollection: an
        empty list would invite a create that the server then refuses, on every pass."""
        params = {"labelSelector": label_selector} if label_selector else None
        got = await self._call("GET", path, params=params)
        if got is None:
            raise UnknownCollection(path)
        return list(got.get("items") or [])

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        got = await self._call("POST", path, body)
        return got or {}

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self._call("PATCH", path, body)

    async def delete(self, path: str) -> bool:
        """True when something was deleted (absent already is fine: deletion is idempotent)."""
        return await self._call("DELETE", path) is not None
