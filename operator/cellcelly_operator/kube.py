"""A small async Kubernetes API client over aiohttp, on the credentials kopf logged in with.

Only what the operator needs: get, list, create, server-side apply, merge patch, delete. Children are
written by server-side apply (field manager `cellcelly-operator`, forced): the server records which
fields are ours, so a field a new operator version no longer sets is removed (a merge patch leaves it
behind), a field a user or another controller owns and we never set is left alone, and no
resourceVersion is sent (a PUT would need one and fail with 409 on every concurrent write, e.g. the
controllers' status). Forced: the operator is the controller of its children, a hand edit of a field it
sets is drift to undo. Create (POST) stays for what is made once and never rewritten (a generated
Secret, an Event): a 409 there means it already exists; entries a newer version adds to such a Secret
go in by a merge patch (only those keys change). A stack's status is written by kopf through the
/status subresource.
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

FIELD_MANAGER = "cellcelly-operator"
APPLY = "application/apply-patch+yaml"  # JSON is YAML: the body goes as JSON
MERGE = "application/merge-patch+json"


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

    async def _call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", **kw: Any
    ) -> dict[str, Any] | None:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = content_type
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

    async def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply of `body` (the whole object as we want it) at its item path: creates it when
        absent (the server then checks `create` as well as `patch` in RBAC)."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        return await self._call("PATCH", path, body, content_type=APPLY, params=params)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A JSON merge patch: only the keys in `body` change (entries added to a generated Secret, all
        the others left as they are); a metadata.resourceVersion in it makes the server refuse (409) a
        write over a change made meanwhile."""
        return await self._call(
            "PATCH", path, body, content_type=MERGE, params={"fieldManager": FIELD_MANAGER}
        )

    async def delete(self, path: str) -> bool:
        """True when something was deleted (absent already is fine: deletion is idempotent)."""
        return await self._call("DELETE", path) is not None
