"""Package renewal: a package the subscriber chose to renew is bought again from the wallet when
its period ends.

Every `every` seconds the renewer asks the record which chosen renewals have a period that ended
within the last `window` seconds and was not tried yet, renews each through the balance store
(`AccountService.renew_package`: the new buckets and a "package-renewed" notice, or a
"package-renewal-failed" notice when the wallet cannot pay, in one commit), then marks the period
tried in the record. Once per period, whatever runs it: the renewal's reference names the period
(a repeat is a no-op, its notice the same id), so MW replicas may sweep at once; a crash between
the commit and the mark only makes the next sweep repeat a no-op. The notice before the end is the
notifier's package-expiring one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from cellcelly.application.accounts import AccountService
from cellcelly.application.worker import run_until_stopped
from cellcelly.domain.account import DAY
from cellcelly.errors import CellCellyError
from cellcelly.ports.records import SystemOfRecord

log = logging.getLogger(__name__)


class PackageRenewer:
    def __init__(
        self,
        accounts: AccountService,
        records: SystemOfRecord,
        *,
        every: float = 60.0,
        window: int = DAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts, self.records = accounts, records
        self.every, self.window, self.clock = every, window, clock
        self._stop = asyncio.Event()

    def sweep(self) -> int:
        """Renew what is due now (blocking: the store and the record); how many periods were tried."""
        now = int(self.clock())
        due = self.records.renewals_due(now - self.window, now)
        for grant in due:
            try:
                self.accounts.renew_package(grant.msisdn, grant.package, grant.valid_until)
            except CellCellyError as exc:  # unknown subscriber or a package no longer sold: not again
                log.warning(
                    "package renewal impossible",
                    extra={"msisdn": grant.msisdn, "package": grant.package, "error": str(exc)},
                )
            self.records.renewal_tried(grant.msisdn, grant.package, grant.valid_until)
        if due:
            log.info("package renewals tried", extra={"count": len(due)})
        return len(due)

    async def run(self) -> None:
        async def step() -> float:
            await asyncio.to_thread(self.sweep)
            return self.every

        await run_until_stopped(step, self._stop, name="package renewer", backoff=(1.0, 60.0))

    def stop(self) -> None:
        self._stop.set()
