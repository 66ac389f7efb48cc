"""When the gateway refuses new sessions: a standing queue behind it, measured as CoDel does.

Past its knee a charging path without a limit answers everything later and later (seconds at twice
the load it can carry, `make bench`'s e2e rows), until the network's timers fire on sessions that
were granted quota. Refusing *new* sessions (CCR-I) and events (CCR-E) with 3004 DIAMETER_TOO_BUSY
bounds the delay of the sessions already under way: their updates and terminates, which report
usage that is money, are always forwarded. A client on 3004 tries another peer (RFC 6733 §7.1.3)
or applies its Credit-Control-Failure-Handling (RFC 8506 §5.7).

With DOIC (RFC 7683, `diameter/doic.py`) the clients that understand it are also told how much
less to send: an overload report in each answer to them, its reduction 10 points higher for each
window still overloaded (to 90%: some new sessions must come to show the queue is gone) and 5 lower
for each window without a queue, then ended (validity 0) and said so for a report's validity. They
then hold back new sessions before sending them, and the 3004s are for the rest.

The signal is the *fastest* answer of a window (RFC 8289's rule), plus the least lateness of the
gateway's own loop in it: one stuck request, say on an OCS that hangs until its timeout while
another serves, is no queue, while a standing queue delays every request, the fastest too; and a
DGW short of CPU leaves requests unread in their sockets, which only its loop's lateness shows.
"""

from __future__ import annotations

import logging
import math
import time

from cellcelly.diameter.doic import OverloadReport

log = logging.getLogger(__name__)

WINDOW = 0.2  # seconds: how often the verdict is taken again (CoDel's interval is 100 ms)
# answers a window needs before it can show a queue: a few requests, however late, are none (as
# CoDel leaves a queue under one packet alone); one slow answer at a quiet time, a commit that
# stalled, refused the next new session (`tests/integration/test_stack_apart.py`, once in CI)
MIN_ANSWERS = 4
TICK = 0.05  # seconds between the gateway's looks at its own loop's lateness
REDUCTION_STEP = 10  # percentage points more a window still overloaded (DOIC's OC-Reduction-Percentage)
REDUCTION_EASE = 5  # points less a window without a queue: back up more slowly than down
MAX_REDUCTION = 90
REPORT_VALIDITY = 10  # seconds a report holds unless renewed (OC-Validity-Duration); every answer renews it


class Overload:
    """Decides whether new sessions are admitted, from how long each charge took and how late the
    gateway's own loop ran.

    A request waits twice: unread in its socket while the loop is busy with others (the loop's
    lateness, seen by a timer every `TICK`), then for its answer (from its CCR to its CCA). The
    least of each over a window, added, is what even the luckiest request waited; past `delay`
    seconds (0: never) new sessions are refused. Time is the caller's (`time.monotonic()`), passed
    in, so the rule is tested without a clock.
    """

    def __init__(self, delay: float, window: float = WINDOW, sequence: int | None = None) -> None:
        if delay < 0 or window <= 0:
            raise ValueError("the overload delay must be >= 0 and its window > 0")
        self.delay = delay
        self.window = window
        self.overloaded = False
        self.reduction = 0  # percent, in the DOIC report; 0: none
        # OC-Sequence-Number: from the wall clock in ms, so a restarted gateway's reports are newer
        # than its last ones (a few changes a second never catch up with the clock)
        self.sequence = int(time.time() * 1000) if sequence is None else sequence
        self._ended_until = -math.inf  # an ended report is told until then
        self._fastest = math.inf  # the fastest answer of the current window
        self._least_lag = math.inf  # the loop's least lateness in it
        self._answers = 0  # in it
        self._window_end = -math.inf
        self._refused = 0  # in the current overload, for its log line

    def answered(self, took: float, now: float) -> None:
        """A charge took `took` seconds, from its CCR to its answer, and ended at `now`."""
        if not self.delay:
            return
        if took < self._fastest:
            self._fastest = took
        self._answers += 1
        if now < self._window_end:
            return
        if self._window_end == -math.inf:  # the first answer: it opens the first window
            self._window_end = now + self.window
            return
        lag = 0.0 if self._least_lag == math.inf else self._least_lag
        self._verdict(self._fastest + lag > self.delay and self._answers >= MIN_ANSWERS, lag, now)
        self._fastest = self._least_lag = math.inf
        self._answers = 0
        self._window_end = now + self.window

    def lagged(self, late: float) -> None:
        """The loop ran a timer `late` seconds after it was due: a request that came then waited
        about that long before it was even read."""
        if late < self._least_lag:
            self._least_lag = late

    def admits(self, now: float) -> bool:
        """Whether a new session may start now."""
        if not self.overloaded:
            return True
        if now >= self._window_end + self.window:
            # nothing answered for a whole window: no measure any more, so no reason to refuse
            self._verdict(False, 0.0, now)
            return True
        self._refused += 1
        return False

    def report(self, now: float) -> OverloadReport | None:
        """The DOIC report for answers now: a reduction, an ended one (validity 0), or none."""
        if self.reduction:
            return OverloadReport(self.sequence, self.reduction, REPORT_VALIDITY)
        if now < self._ended_until:
            return OverloadReport(self.sequence, 0, 0)
        return None

    def _verdict(self, overloaded: bool, lag: float, now: float) -> None:
        before = self.reduction
        if overloaded:
            self.reduction = min(MAX_REDUCTION, self.reduction + REDUCTION_STEP)
        elif self.reduction:
            self.reduction = max(0, self.reduction - REDUCTION_EASE)
            if not self.reduction:
                self._ended_until = now + REPORT_VALIDITY
        if self.reduction != before:
            self.sequence += 1
        if overloaded and not self.overloaded:
            log.warning(
                "overloaded: new sessions refused with 3004 DIAMETER_TOO_BUSY",
                extra={
                    "fastest_answer_ms": round(self._fastest * 1000, 1),
                    "loop_lag_ms": round(lag * 1000, 1),
                    "delay_ms": self.delay * 1000,
                },
            )
        elif self.overloaded and not overloaded:
            log.info("overload over: new sessions admitted", extra={"refused": self._refused})
            self._refused = 0
        self.overloaded = overloaded
