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

    def charge(self, req: ChargeRequest) -> ChargeAnswer:
        msisdn = req.msisdn or self.store.session_owner(req.session_id)
        if not msisdn:
            return ChargeAnswer(
                req.session_id, req.request_type, req.request_number, ResultCode.UNKNOWN_SESSION_ID
            )
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

        return self.store.transact(msisdn, apply)
