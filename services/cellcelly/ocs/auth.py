"""The shared secret that lets a caller charge: the DGW on the wire, anyone on the JSON charging API.

Who can reach the OCS must not be enough to charge (issue 12 §5). One key, CELLCELLY_OCS_API_KEY,
is shared by the OCS and its gateways; the OCS compares what a caller presents in constant time
(SHA-256 of both sides, so not even the length leaks) and never logs it. It is rotated by restarting
OCS and DGW with a new Secret. Unset, the OCS refuses every charging caller (fail closed):
`cellcelly ocs` and `cellcelly dgw` refuse to start without it, and `make run` makes one and keeps
it in the data directory (`KEY_FILE`, mode 0600) so the README's curl commands can read it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

log = logging.getLogger(__name__)

KEY_FILE = "ocs-api-key"
MIN_LENGTH = 16
ENV = "CELLCELLY_OCS_API_KEY"


class ApiKey:
    """The expected key, held only as its digest. `ApiKey(None)` matches nothing."""

    __slots__ = ("_digest",)

    def __init__(self, key: str | None) -> None:
        self._digest = None if not key else hashlib.sha256(key.encode()).digest()

    @property
    def configured(self) -> bool:
        return self._digest is not None

    def matches(self, candidate: bytes | str | None) -> bool:
        if self._digest is None or candidate is None:
            return False
        raw = candidate.encode() if isinstance(candidate, str) else candidate
        return hmac.compare_digest(hashlib.sha256(raw).digest(), self._digest)

    def matches_bearer(self, header: bytes | str | None) -> bool:
        """`Authorization: Bearer <key>` (the scheme in any case, as RFC 9110 allows)."""
        if not header:
            return False
        raw = header.encode("latin-1") if isinstance(header, str) else header
        scheme, _, token = raw.strip().partition(b" ")
        return scheme.lower() == b"bearer" and self.matches(token.strip())

    def __repr__(self) -> str:
        return f"ApiKey(configured={self.configured})"
