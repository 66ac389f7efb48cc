"""Plain-data forms of accounts, sessions, answers and events (for journals, buses and stores).

Lists rather than dicts for the hot, internal forms (journal records): they are smaller and
faster to write. Events get a self-describing dict with a schema version, because they leave
the process and outlive code versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from cellcelly.domain.account import Account, Bucket, RatedService, Reservation, Session, Sessions, Status
from cellcelly.domain.charging import (
    KEPT_HEAD,
    KEPT_RESULT_FIELDS,
    REQUEST_TYPES,
    RESULT_CODES,
    ChargeAnswer,
    KeptAnswer,
    NotificationEvent,
    ServiceResult,
    UsageEvent,
)
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.domain.units import service_of

EVENT_SCHEMA_VERSION = 1
# the dataclass's fields, not __slots__: a class compiled by mypyc (setup.py) has no __slots__
_NOTICE_FIELDS = tuple(f.name for f in fields(NotificationEvent))

# --- answers ----------------------------------------------------------------------------------


def answer_to_list(a: ChargeAnswer) -> list[Any]:
    return [
        a.session_id,
        int(a.request_type),
        a.request_number,
        int(a.result_code),
        [_result_to_list(r) for r in a.services],
    ]


def answer_from_list(d: list[Any]) -> ChargeAnswer:
    """Raises KeyError for a request type or result code it does not know."""
    codes = RESULT_CODES
    return ChargeAnswer(
        d[0],
        REQUEST_TYPES[d[1]],
        d[2],
        codes[d[3]],
        tuple(ServiceResult(r[0], codes[r[1]], r[2], r[3], *r[4:7]) for r in d[4]),
    )


def _result_to_list(r: ServiceResult) -> list[Any]:
    head = [r.rating_group, int(r.result_code), r.granted, r.validity_time, r.final_unit]
    if r.redirect_url or r.quota_holding_time:  # only when set: most answers carry neither
        return [*head, r.redirect_url, r.quota_holding_time]
    return head


def kept_to_list(k: KeptAnswer) -> list[Any]:
    """A session's kept answer as a journal, a snapshot or a store writes it: its flat tuple
    (`charging.kept_answer`'s layout) as it is. Nested as `answer_to_list` writes an answer, it took
    0.5 µs an answer to build (docs/performance-log.md)."""
    return list(k)


def kept_from_list(d: list[Any]) -> KeptAnswer:
    """A kept answer as written: flat (`kept_to_list`), or nested in `answer_to_list`'s form, as
    journals, snapshots and VoltDB's session bodies held them before. Raises ValueError for neither."""
    if len(d) == 5 and isinstance(d[4], list):
        kept = [d[0], d[1], d[2], d[3]]
        for r in d[4]:
            kept += r
            if len(r) == 5:
                kept += ("", None)
        return tuple(kept)
    if len(d) < KEPT_HEAD or (len(d) - KEPT_HEAD) % KEPT_RESULT_FIELDS:
        raise ValueError(f"a kept answer of {len(d)} fields")
    return tuple(d)


# --- sessions and accounts --------------------------------------------------------------------


def _rated_to_list(rs: RatedService) -> list[Any]:
    r = rs.reservation
    res = None if r is None else [r.bucket_units, r.wallet_units, r.wallet_money, r.expires_at]
    return [
        rs.service,
        rs.rule_id,
        rs.price,
        rs.per,
        rs.bucket,
        rs.destination,
        rs.wallet_units,
        rs.money,
        rs.used,
        res,
        rs.catalogue_version,
    ]


def _rated_from_list(d: list[Any]) -> RatedService:
    r = d[9]
    return RatedService(
        service_of(d[0]),
        d[1],
        d[2],
        d[3],
        None if d[4] is None else service_of(d[4]),
        d[5],
        d[6],
        d[7],
        d[8],
        None if r is None else Reservation(dict(r[0]), r[1], r[2], r[3]),
        d[10] if len(d) > 10 else "",  # absent from sessions written before it existed
    )


def session_to_list(s: Session, answers: list[Any] | None = None) -> list[Any]:
    """`answers` replaces the stored answers (a journal writes only the new ones)."""
    return [
        s.id,
        s.last_request,
        s.updated_at,
        s.location,
        [[rg, _rated_to_list(rs)] for rg, rs in s.services.items()],
        [kept_to_list(a) for a in s.answers] if answers is None else answers,
        s.finished_at,
    ]


def session_from_list(d: list[Any]) -> Session:
    return Session(
        d[0],
        d[1],
        d[2],
        d[3],
        {rg: _rated_from_list(rs) for rg, rs in d[4]},
        tuple([kept_from_list(a) for a in d[5]]),
        d[6],
    )


def header_to_list(a: Account) -> list[Any]:
    """The account without its sessions (they are written separately, only when they change)."""
    return [
        a.msisdn,
        a.status,  # str enums: orjson writes their values
        a.wallet,
        [
            [b.id, b.service, b.package, b.total, b.remaining, b.valid_from, b.valid_until]
            for b in a.buckets.values()
        ],
        a.held_money,
        a.held_units,
        a.next_sweep,
        a.revision,
        a.recent_references,
        a.held_references,
    ]


def header_from_list(d: list[Any], sessions: Sessions | Mapping[str, Session] | None = None) -> Account:
    buckets = [Bucket(b[0], service_of(b[1]), b[2], b[3], b[4], b[5], b[6]) for b in d[3]]
    return Account(
        d[0],
        Status(d[1]),
        d[2],
        {b.id: b for b in buckets},
        d[4],
        dict(d[5]),
        sessions if isinstance(sessions, Sessions) else Sessions.of(sessions or {}),
        d[6],
        d[7],
        tuple(d[8]),
        tuple(d[9]) if len(d) > 9 else (),  # headers written before held references had none
    )


def account_to_dict(a: Account) -> dict[str, Any]:
    return {"header": header_to_list(a), "sessions": [session_to_list(s) for s in a.sessions.values()]}


def account_from_dict(d: dict[str, Any]) -> Account:
    sessions = [session_from_list(s) for s in d["sessions"]]
    return header_from_list(d["header"], {s.id: s for s in sessions})


# --- events -----------------------------------------------------------------------------------


def event_to_dict(e: UsageEvent | LedgerEvent | NotificationEvent) -> dict[str, Any]:
    if isinstance(e, NotificationEvent):
        return {
            "type": "notification",
            "schema": EVENT_SCHEMA_VERSION,
            **{k: getattr(e, k) for k in _NOTICE_FIELDS},
        }
    if isinstance(e, UsageEvent):
        return {
            "type": "usage",
            "schema": EVENT_SCHEMA_VERSION,
            "event_id": e.event_id,
            "msisdn": e.msisdn,
            "session_id": e.session_id,
            "request_number": e.request_number,
            "rating_group": e.rating_group,
            "service": e.service.value,
            "rule_id": e.rule_id,
            "units": e.units,
            "bucket_units": e.bucket_units,
            "wallet_units": e.wallet_units,
            "uncharged_units": e.uncharged_units,
            "money": e.money,
            "wallet_after": e.wallet_after,
            "occurred_at": e.occurred_at,
            "buckets": [list(b) for b in e.buckets],
            "revision": e.revision,
            "destination": e.destination,
            "location": e.location,
            "catalogue_version": e.catalogue_version,
        }
    return {
        "type": "ledger",
        "schema": EVENT_SCHEMA_VERSION,
        "event_id": e.event_id,
        "msisdn": e.msisdn,
        "kind": e.kind,
        "amount": e.amount,
        "wallet_after": e.wallet_after,
        "occurred_at": e.occurred_at,
        "reference": e.reference,
        "package": e.package,
        "buckets": [list(b) for b in e.buckets],
        "status": e.status,
        "revision": e.revision,
    }


LIFECYCLE_KINDS = {"provisioned": "created", "status": "status"}


def lifecycle_event(ledger: dict[str, Any]) -> dict[str, Any] | None:
    """The subscriber-lifecycle event a ledger event implies (sign-up, suspension, resumption),
    for the subscriber topic; None for wallet movements. Derived, so it travels in the same
    outbox entry as the change itself: no lifecycle event without the change, nor the other way."""
    if ledger.get("type") != "ledger" or ledger.get("kind") not in LIFECYCLE_KINDS:
        return None
    kind = LIFECYCLE_KINDS[ledger["kind"]]
    if kind == "status":
        kind = "suspended" if ledger.get("status") == "suspended" else "resumed"
    return {
        "type": "subscriber",
        "schema": EVENT_SCHEMA_VERSION,
        "event_id": f"{ledger['event_id']}#lifecycle",
        "msisdn": ledger["msisdn"],
        "kind": kind,
        "package": ledger.get("package", ""),
        "occurred_at": ledger["occurred_at"],
        "revision": ledger.get("revision", 0),
    }


def event_from_dict(d: dict[str, Any]) -> UsageEvent | LedgerEvent | NotificationEvent:
    if d.get("schema") != EVENT_SCHEMA_VERSION:
        raise ValueError(f"unsupported event schema {d.get('schema')!r}")
    if d["type"] == "notification":
        # fields added later have defaults: events written before them still decode
        return NotificationEvent(**{k: d[k] for k in _NOTICE_FIELDS if k in d})
    if d["type"] == "usage":
        return UsageEvent(
            d["event_id"],
            d["msisdn"],
            d["session_id"],
            d["request_number"],
            d["rating_group"],
            service_of(d["service"]),
            d["rule_id"],
            d["units"],
            d["bucket_units"],
            d["wallet_units"],
            d["uncharged_units"],
            d["money"],
            d["wallet_after"],
            d["occurred_at"],
            tuple((b[0], b[1]) for b in d["buckets"]),
            d.get("revision", 0),  # absent from events written before it existed, like those below
            d.get("destination", ""),
            d.get("location", ""),
            d.get("catalogue_version", ""),
        )
    if d["type"] == "ledger":
        return LedgerEvent(
            d["event_id"],
            d["msisdn"],
            d["kind"],
            d["amount"],
            d["wallet_after"],
            d["occurred_at"],
            d["reference"],
            d["package"],
            tuple((b[0], b[1], b[2], b[3], b[4]) for b in d["buckets"]),
            d["status"],
            d.get("revision", 0),
        )
    raise ValueError(f"unknown event type {d['type']!r}")


def usage_to_list(e: UsageEvent) -> list[Any]:
    """A usage event as a journal record holds it: positional, like the record's other lists.
    orjson's own form of the compiled dataclass reads its fields one lookup at a time, ~1.3 µs an
    event more (docs/performance-log.md). A field added later goes at the end and is read back with
    its default where a record has none."""
    return [
        e.event_id,
        e.msisdn,
        e.session_id,
        e.request_number,
        e.rating_group,
        e.service.value,
        e.rule_id,
        e.units,
        e.bucket_units,
        e.wallet_units,
        e.uncharged_units,
        e.money,
        e.wallet_after,
        e.occurred_at,
        e.buckets,
        e.revision,
        e.destination,
        e.location,
        e.catalogue_version,
    ]


def usage_from_list(d: list[Any]) -> UsageEvent:
    return UsageEvent(
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        service_of(d[5]),
        d[6],
        d[7],
        d[8],
        d[9],
        d[10],
        d[11],
        d[12],
        d[13],
        tuple((b[0], b[1]) for b in d[14]),
        *d[15:19],
    )


def journal_event(e: UsageEvent | LedgerEvent | NotificationEvent) -> Any:
    """An event as a journal record holds it: a usage event (nearly every one) as its list; the
    rarer ones as they are, which orjson writes as a dict of their fields."""
    return usage_to_list(e) if isinstance(e, UsageEvent) else e


def event_from_journal(d: list[Any] | dict[str, Any]) -> UsageEvent | LedgerEvent | NotificationEvent:
    """`journal_event`'s form read back; a dict is also every event of journals written before usage
    events were lists."""
    return event_from_fields(d) if isinstance(d, dict) else usage_from_list(d)


def event_from_fields(d: dict[str, Any]) -> UsageEvent | LedgerEvent | NotificationEvent:
    """An event from orjson's own dataclass form (field names only; journals use it)."""
    if "kind" in d and "bucket_id" in d:
        return NotificationEvent(**d)
    if "session_id" in d:
        return UsageEvent(
            **{**d, "service": service_of(d["service"]), "buckets": tuple(map(tuple, d["buckets"]))}
        )
    return LedgerEvent(**{**d, "buckets": tuple(map(tuple, d["buckets"]))})
