"""The charging use case: one CCR in, one CCA out, one atomic commit per subscriber."""

from __future__ import annotations

import time
from collections.abc import Callable

from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.domain.account import Account
from cellcelly.domain.charging import ChargeAnswer, ChargeRequest, ResultCode, charge
from cellcelly.ports.balance_store import BalanceStore, Commit


class ChargingService:
    def __init__(
        self, store: BalanceStore, catalogue: CatalogueHolder, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.clock = clock

    @property
    def inline(self) -> bool:
        """True: `charge` never waits on I/O, so an event loop may call it directly (and should:
        a coroutine per request would only add cost). False: a loop must use `charge_async`."""
        return self.store.inline

    def charge(self, req: ChargeRequest) -> ChargeAnswer:
        msisdn = req.msisdn or self.store.session_owner(req.session_id)
        if not msisdn:
            return _unknown_session(req)
        return self.store.transact(msisdn, self._apply(req))

    async def charge_async(self, req: ChargeRequest) -> ChargeAnswer:
        """`charge` for code on an event loop: never blocks it, whatever the store."""
        if self.store.inline:
            return self.charge(req)
        msisdn = req.msisdn or await self.store.session_owner_async(req.session_id)
        if not msisdn:
            return _unknown_session(req)
        return await self.store.transact_async(msisdn, self._apply(req))

    def _apply(self, req: ChargeRequest) -> Callable[[Account | None], tuple[ChargeAnswer, Commit | None]]:
        catalogue = self.catalogue.current  # one version for the whole operation

        def apply(account: Account | None) -> tuple[ChargeAnswer, Commit | None]:
            # the clock is read under the subscriber's lock so time never runs backwards for it
            outcome = charge(account, catalogue, req, int(self.clock()))
            if outcome.account is None:
                return outcome.answer, None
            return outcome.answer, Commit(
                outcome.account,
                outcome.changed_sessions,
                outcome.removed_sessions,
                [*outcome.events, *outcome.notices],
            )

        return apply


def _unknown_session(req: ChargeRequest) -> ChargeAnswer:
    return ChargeAnswer(req.session_id, req.request_type, req.request_number, ResultCode.UNKNOWN_SESSION_ID)
