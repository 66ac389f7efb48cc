"""When the gateway refuses new sessions: a standing queue behind it, measured as CoDel does.

Past its knee a charging path without a limit answers everything later and later (seconds at twice
the load it can carry, `make bench`'s e2e rows), until the network's timers fire on sessions that
were granted quota. Refusing *new* sessions (CCR-I) and events (CCR-E) with 3004 DIAMETER_TOO_BUSY
bounds the delay of the sessions already under way: their updates and terminates, which report
usage that is money, are always forwarded. A client on 3004 tries another peer (RFC 6733 §7.1.3)
or applies its Credit-Control-Failure-Handling (RFC 8506 §5.7).

The signal is the *fastest* answer of a window (RFC 8289's rule): one stuck request, say on an OCS
that hangs until its timeout while another serves, is no queue, while a standing queue delays
every request, the fastest too. It includes the gateway's own loop: a DGW short of CPU answers late
and sheds as well.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

WINDOW = 0.2  # seconds: how often the verdict is taken again (CoDel's interval is 100 ms)


class Overload:
    """Decides, from how long each charge took, whether new sessions are admitted.

    `delay` seconds is the standing delay past which they are not (0: always admitted). Time is
    the caller's (`time.monotonic()`), passed in, so the rule is tested without a clock.
    """

    def __init__(self, delay: float, window: float = WINDOW) -> None:
        if delay < 0 or window <= 0:
            raise ValueError("the overload delay must be >= 0 and its window > 0")
        self.delay = delay
        self.window = window
        self.overloaded = False
        self.refused = 0  # new sessions refused, in all
        self._fastest = math.inf  # of the current window
        self._window_end = -math.inf
        self._refused_here = 0  # in the current overload, for its log line

    def answered(self, took: float, now: float) -> None:
        """A charge took `took` seconds, from its CCR to its answer, and ended at `now`."""
        if not self.delay:
            return
        if took < self._fastest:
            self._fastest = took
        if now < self._window_end:
            return
        if self._window_end == -math.inf:  # the first answer: it opens the first window
            self._window_end = now + self.window
            return
        self._verdict(self._fastest > self.delay)
        self._fastest = math.inf
        self._window_end = now + self.window

    def admits(self, now: float) -> bool:
        """Whether a new session may start now; counts the ones that may not."""
        if not self.overloaded:
            return True
        if now >= self._window_end + self.window:
            # nothing answered for a whole window: no measure any more, so no reason to refuse
            self._verdict(False)
            return True
        self.refused += 1
        self._refused_here += 1
        return False

    def _verdict(self, overloaded: bool) -> None:
        if overloaded and not self.overloaded:
            log.warning(
                "overloaded: new sessions refused with 3004 DIAMETER_TOO_BUSY",
                extra={"fastest_answer_ms": round(self._fastest * 1000, 1), "delay_ms": self.delay * 1000},
            )
        elif self.overloaded and not overloaded:
            log.info("overload over: new sessions admitted", extra={"refused": self._refused_here})
            self._refused_here = 0
        self.overloaded = overloaded
