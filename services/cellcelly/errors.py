"""Every error CellCelly raises on purpose, in one tree, and the answer each boundary gives for it.

This module imports nothing, so the domain may import it and stay pure.

    CellCellyError                          anything else of ours
    ├── DomainError (ValueError)            a request breaks a business rule
    │     CatalogueError, InsufficientFunds, UnknownSubscriber, InvalidMsisdn, SubscriberExists,
    │     CatalogueConflict, MessageTooLong
    ├── BackendError                        a back end failed, or what it did is unknown
    │   ├── StoreError                      the balance store (embedded journal, VoltDB)
    │   │   ├── ConflictError               an optimistic write kept losing its race
    │   │   │     NoticeHeld                another notifier replica holds the notice
    │   │   └── VoltUnavailable > CommitOutcomeUnknown
    │   └── OcsUnavailable, OcsRefused, KafkaBusError, SynthesisError (speech engine)
    ├── ProtocolError                       what a peer sent cannot be read or is refused at an edge
    │     DecodeError (Diameter), GyError (Gy/Ro), PduError (SMPP PDU), SmppError (the SMSC refused
    │     or went away), SipError (ValueError), TokenInvalid (a bearer token)
    ├── ApiError                            an HTTP answer of its own: status, title, cause
    │     HttpProblem, SelfCareError (InvalidCredentials, Locked, Taken, ...)
    └── ConfigurationError                  the settings cannot run this deployable (one missing):
                                            `cellcelly <service>` exits with its message, no traceback

The boundaries, and the standard answer of each branch (class attributes below; an error that knows
better carries its own: a DecodeError's or GyError's Result-Code, a PduError's command_status, an
ApiError's HTTP status):

    branch          HTTP (ProblemDetails)   Diameter Result-Code      SMPP command_status   SIP
    DomainError     400 INVALID_INPUT       5012 UNABLE_TO_COMPLY     0x08 ESME_RSYSERR     500
    BackendError    503 SERVICE_UNAVAILABLE 3002 UNABLE_TO_DELIVER    0x08 ESME_RSYSERR     503
    ProtocolError   400 INVALID_INPUT       5004 INVALID_AVP_VALUE    0x02 ESME_RINVCMDLEN  400
    ApiError        its own status          5012 UNABLE_TO_COMPLY     0x08 ESME_RSYSERR     500
    Configuration.. 500 SYSTEM_FAILURE      5012 UNABLE_TO_COMPLY     0x08 ESME_RSYSERR     500
    anything else   500 SYSTEM_FAILURE      5012 UNABLE_TO_COMPLY     0x08 ESME_RSYSERR     500

HTTP: `cellcelly.web.problem_for` (the MW's and OCS's exception handlers); Diameter: the DGW
(`dgw/gateway.py`: a GyError or DecodeError its own code, OcsUnavailable 3002) and the peer
(`diameter/peer.py`); SMPP: the ESME answers a deliver_sm it could not hand over RSYSERR (the SMSC
delivers it again) and a PDU it cannot read with the PduError's own status; SIP: the IVR answers a
request it cannot parse 400, a call it cannot serve (no audio, no balance) 503, a bug 500.
"""

from __future__ import annotations

from typing import Any


class CellCellyError(Exception):
    """Base of every error CellCelly raises on purpose."""

    http_status = 500
    http_cause = "SYSTEM_FAILURE"
    diameter_result = 5012  # DIAMETER_UNABLE_TO_COMPLY
    smpp_status = 0x08  # ESME_RSYSERR
    sip_status = 500


class DomainError(CellCellyError, ValueError):
    """Input that breaks a domain rule (bad amount, bad unit, inconsistent catalogue)."""

    http_status = 400
    http_cause = "INVALID_INPUT"
    diameter_result = 5012
    smpp_status = 0x08
    sip_status = 500


class BackendError(CellCellyError):
    """A back end (balance store, record, bus, cache, OCS, speech engine) failed or did not answer;
    the same request may work later."""

    http_status = 503
    http_cause = "SERVICE_UNAVAILABLE"
    diameter_result = 3002  # DIAMETER_UNABLE_TO_DELIVER: the client tries another peer or later
    smpp_status = 0x08
    sip_status = 503


class StoreError(BackendError):
    """The balance store failed (I/O, a conflict that could not be retried, a damaged journal)."""


class ConflictError(StoreError):
    """An optimistic write lost a race; the caller may retry."""


class ProtocolError(CellCellyError):
    """A message from a peer that cannot be read, or is refused, at the edge that received it."""

    http_status = 400
    http_cause = "INVALID_INPUT"
    diameter_result = 5004  # DIAMETER_INVALID_AVP_VALUE
    smpp_status = 0x02  # ESME_RINVCMDLEN
    sip_status = 400


class ApiError(CellCellyError):
    """An error that is its own HTTP answer (RFC 7807 / 3GPP ProblemDetails): `status`, `title`,
    `cause`, `detail` and extra members; `headers()` go with it."""

    status = 500
    title = "Internal server error"
    cause = "SYSTEM_FAILURE"
    diameter_result = 5012
    smpp_status = 0x08
    sip_status = 500

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail, self.extra = detail, extra

    def headers(self) -> dict[str, str]:
        return {}


class ConfigurationError(CellCellyError):
    """A deployable cannot start with these settings (a required one is missing); raised before
    anything is served, so no request ever sees it (if one did, it is the server's fault)."""

    http_status = 500
    http_cause = "SYSTEM_FAILURE"
    diameter_result = 5012
    smpp_status = 0x08
    sip_status = 500


BRANCHES: tuple[type[CellCellyError], ...] = (
    DomainError,
    BackendError,
    ProtocolError,
    ApiError,
    ConfigurationError,
)
