"""Diameter Overload Indication Conveyance (RFC 7683): the AVPs, and what a client does with them.

A server that is overloaded can answer 3004 DIAMETER_TOO_BUSY to what it will not serve; with DOIC
it also tells the clients that said they understand it (OC-Supported-Features in their requests)
how much less to send it (OC-OLR: a reduction percentage, valid for some seconds), so that they
hold back before sending rather than after being refused. Only the base algorithm, loss (§5.5.1):
the client drops that percentage of the requests it would send the server, choosing which. Only
host reports: a realm report concerns agents routing by realm, which neither side here is.

The server's side (when to report, how much) is `dgw/overload.py`'s; the client's is `Abatement`,
which the traffic generator uses to throttle new sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellcelly.diameter.codec import Avp, Message
from cellcelly.diameter.constants import OLR_DEFAULT_ALGO, Code, OcReportType

DEFAULT_VALIDITY = 30  # seconds, when an OC-OLR has no OC-Validity-Duration (§7.5)
MAX_VALIDITY = 86_400  # longer is read as this (§7.5)

# DOIC AVPs go without the M-bit: a peer that does not know them must be able to pass them over
# (RFC 7683 §7.8 leaves M to the application, and a set M-bit would make them 5001 there)
_SUPPORTED = Avp.grouped(
    Code.OC_SUPPORTED_FEATURES,
    [Avp.u64(Code.OC_FEATURE_VECTOR, OLR_DEFAULT_ALGO, mandatory=False)],
    mandatory=False,
)


@dataclass(frozen=True, slots=True)
class OverloadReport:
    """One OC-OLR of the host report type: `reduction` percent less traffic for `validity` seconds;
    `validity` 0 ends an earlier report. A report with a higher `sequence` replaces a lower one."""

    sequence: int
    reduction: int
    validity: int

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    def __init__(self, sequence: int, reduction: int, validity: int) -> None:
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "reduction", reduction)
        object.__setattr__(self, "validity", validity)

    @property
    def ends(self) -> bool:
        return self.validity == 0 or self.reduction == 0


def supported() -> Avp:
    """OC-Supported-Features with the loss algorithm: a client sends it in each request, a server
    in each answer to a request that had it (the algorithm it chose)."""
    return _SUPPORTED


def understands(request: Message) -> bool:
    """Whether the request's sender takes overload reports with the loss algorithm (its
    OC-Supported-Features has no feature vector, which means the loss algorithm, or one with it)."""
    features = request.find(Code.OC_SUPPORTED_FEATURES)
    if features is None:
        return False
    vector = features.find(Code.OC_FEATURE_VECTOR)
    return vector is None or (len(vector.data) == 8 and bool(vector.as_u64() & OLR_DEFAULT_ALGO))


def olr(report: OverloadReport) -> Avp:
    return Avp.grouped(
        Code.OC_OLR,
        [
            Avp.u64(Code.OC_SEQUENCE_NUMBER, report.sequence, mandatory=False),
            Avp.u32(Code.OC_REPORT_TYPE, OcReportType.HOST_REPORT, mandatory=False),
            Avp.u32(Code.OC_REDUCTION_PERCENTAGE, report.reduction, mandatory=False),
            Avp.u32(Code.OC_VALIDITY_DURATION, report.validity, mandatory=False),
        ],
        mandatory=False,
    )


def read_report(answer: Message) -> OverloadReport | None:
    """The host report an answer carries, if any. A malformed OC-OLR (no sequence number or report
    type, values of the wrong size) and a realm report are passed over, as §5.2.2 lets a reacting
    node ignore what it cannot use; a reduction over 100 is 100, a validity over a day a day."""
    found = answer.find(Code.OC_OLR)
    if found is None:
        return None
    sequence = found.find(Code.OC_SEQUENCE_NUMBER)
    kind = found.find(Code.OC_REPORT_TYPE)
    reduction = found.find(Code.OC_REDUCTION_PERCENTAGE)
    validity = found.find(Code.OC_VALIDITY_DURATION)
    if sequence is None or kind is None or len(sequence.data) != 8 or len(kind.data) != 4:
        return None
    if kind.as_u32() != OcReportType.HOST_REPORT:
        return None
    if any(a is not None and len(a.data) != 4 for a in (reduction, validity)):
        return None
    return OverloadReport(
        sequence.as_u64(),
        min(100, reduction.as_u32()) if reduction is not None else 0,
        min(MAX_VALIDITY, validity.as_u32()) if validity is not None else DEFAULT_VALIDITY,
    )


@dataclass(slots=True)
class _Heard:
    sequence: int
    reduction: int
    until: float

    def __init__(self, sequence: int, reduction: int, until: float) -> None:
        self.sequence = sequence
        self.reduction = reduction
        self.until = until


class Abatement:
    """A reacting node's overload reports, one per server host (§5.2.3): the latest by sequence
    number, until its validity runs out or a later one ends it. Time is the caller's."""

    def __init__(self) -> None:
        self._reports: dict[str, _Heard] = {}

    def heard(self, host: str, report: OverloadReport, now: float) -> None:
        known = self._reports.get(host)
        if known is not None and report.sequence < known.sequence:
            return  # an older report, come late (or replayed with a kept answer): not news
        if known is not None and report.sequence == known.sequence:
            known.until = now + report.validity  # the same report again: it still holds
            return
        if report.ends:
            # remembered as ended, so an older report still in flight cannot start it again
            self._reports[host] = _Heard(report.sequence, 0, now + MAX_VALIDITY)
            return
        self._reports[host] = _Heard(report.sequence, report.reduction, now + report.validity)

    def reduction(self, host: str, now: float) -> int:
        """The percentage of requests to `host` to hold back now."""
        known = self._reports.get(host)
        if known is None or now >= known.until:
            return 0
        return known.reduction

    def throttles(self, host: str, now: float, draw: float) -> bool:
        """Whether to hold back one request to `host`, given a uniform `draw` in [0, 1)."""
        return draw * 100 < self.reduction(host, now)
