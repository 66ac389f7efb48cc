"""The distributed lookup cache: a Hazelcast map in front of a loader, with a near cache on the client.

Every process (OCS, DGW, self-care) talks to the same Hazelcast map, so what one loads the others
find, and `invalidate` on any of them reaches all: the entry is deleted on the member, which tells
every client's near cache (`invalidate_on_change`) to forget it. Repeated lookups of the same
MSISDN are answered from the near cache in this process, without a round trip to the member.

Values are small strings: JSON with the status for a subscriber, `UNKNOWN` for an MSISDN the loader
did not find. Found subscribers live `ttl` seconds on the member, unknown ones `negative_ttl`
(short, so a subscriber who has just signed up is found soon even if nobody invalidated the entry).
Expiry on the member invalidates the near caches too; on top of that a near-cache copy lives at
most `ttl`, and an unknown entry carries the time it was stored, so it is never served after
`negative_ttl` even where invalidations are late (members batch them, up to 10 s by default:
`scripts/hazelcast.sh` sets `hazelcast.map.invalidation.batch.enabled=false`).

Needs the `hazelcast` extra (PyPI `hazelcast-python-client`; never the PyPI package `hazelcast`).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

with warnings.catch_warnings():
    # hazelcast-python-client 5.x imports the stdlib asyncore (deprecated in 3.11, warns on import)
    warnings.filterwarnings("ignore", "The asyncore module is deprecated", DeprecationWarning)
    from hazelcast.client import HazelcastClient

from cellcelly.ports.cache import SubscriberInfo

log = logging.getLogger(__name__)

UNKNOWN_PREFIX = "?"  # "?<epoch seconds when stored>": the loader found no such MSISDN


def encode(info: SubscriberInfo | None, now: float) -> str:
    if info is None:
        return f"{UNKNOWN_PREFIX}{now:.3f}"
    return json.dumps({"status": info.status}, ensure_ascii=False, separators=(",", ":"))


class _Stale(Exception):
    pass


def decode(msisdn: str, value: str, now: float, negative_ttl: float) -> SubscriberInfo | None:
    """The cached answer; raises _Stale for an expired unknown-entry or a value it cannot read."""
    if value.startswith(UNKNOWN_PREFIX):
        try:
            stored = float(value[len(UNKNOWN_PREFIX) :])
        except ValueError as exc:
            raise _Stale(value) from exc
        if now - stored >= negative_ttl:
            raise _Stale(value)
        return None
    try:
        fields = json.loads(value)
        return SubscriberInfo(msisdn=msisdn, status=str(fields["status"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Stale(value) from exc


class HazelcastCache:
    """SubscriberCache on a Hazelcast map (synchronous: the client's blocking map proxy)."""

    def __init__(
        self,
        loader: Callable[[str], SubscriberInfo | None],
        *,
        members: Sequence[str] = ("127.0.0.1:5701",),
        cluster_name: str = "cellcelly",
        map_name: str = "cellcelly-subscribers",
        ttl: float = 300.0,
        negative_ttl: float = 5.0,
        near_cache: bool = True,
        near_cache_max_entries: int = 100_000,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        username: str = "",
        password: str = "",
    ) -> None:
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        self._loader = loader
        self._ttl, self._negative_ttl = float(ttl), float(negative_ttl)
        self._clock = clock
        options: dict[str, Any] = {
            "cluster_name": cluster_name,
            "cluster_members": list(members),
            # fail (HazelcastError) after connect_timeout instead of retrying forever when no member is up
            "cluster_connect_timeout": connect_timeout,
        }
        if username or password:
            # for members with security on (Enterprise); an open-source member refuses any client login
            options["creds_username"], options["creds_password"] = username, password
        if near_cache:
            options["near_caches"] = {
                map_name: {
                    "invalidate_on_change": True,
                    "time_to_live": self._ttl,  # never keep a copy longer than the member does
                    "eviction_max_size": near_cache_max_entries,
                }
            }
        self._client = HazelcastClient(**options)
        try:
            self._map: Any = self._client.get_map(map_name).blocking()
        except BaseException:
            self._client.shutdown()
            raise
        self.hits = self.misses = 0

    @property
    def client(self) -> HazelcastClient:
        return self._client

    def get(self, msisdn: str) -> SubscriberInfo | None:
        value = self._map.get(msisdn)
        now = self._clock()
        if value is not None:
            try:
                info = decode(msisdn, value, now, self._negative_ttl)
            except _Stale:
                pass
            else:
                self.hits += 1
                return info
        self.misses += 1
        info = self._loader(msisdn)
        ttl = self._ttl if info is not None else self._negative_ttl
        # set = put without sending the old value back
        self._map.set(msisdn, encode(info, now), ttl)
        return info

    def invalidate(self, msisdn: str) -> None:
        # delete = remove without sending the old value back; the member invalidates every near cache
        self._map.delete(msisdn)

    def close(self) -> None:
        self._client.shutdown()

    def __enter__(self) -> HazelcastCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
